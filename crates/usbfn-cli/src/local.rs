//! A device built from a configuration and enumerated in-process, over USB/IP on loopback,
//! exactly as `probe` enumerates a remote one: what `config check` prints.

use anyhow::Context;
use usbfn::{BusSpeed, Controller, DeviceConfig};
use usbfn_usbip::client::{self, DeviceTree};
use usbfn_usbip::proto::UsbSpeed;
use usbfn_usbip::server::Server;

/// How long the in-process enumeration may take before it is reported as hung.
const LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Build `config`, activate every interface (no service answers: only what the core answers
/// itself is asked), export it at `speed` on a loopback port and enumerate it.
pub(crate) async fn enumerate(
    config: &DeviceConfig,
    speed: BusSpeed,
) -> anyhow::Result<(DeviceTree, UsbSpeed)> {
    let controller = Controller::new(config)?;
    let names: Vec<String> =
        controller.with_model(|m| m.interfaces().iter().map(|i| i.name.clone()).collect());
    let mut opened = Vec::new();
    for name in &names {
        let iface = controller
            .open(name)
            .with_context(|| format!("opening interface {name:?}"))?;
        iface
            .activate_bus()
            .with_context(|| format!("activating interface {name:?}"))?;
        opened.push(iface);
    }
    let mut builder = Server::builder();
    let busid = builder.export(controller, speed)?;
    let server = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("listening on a loopback port")?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        server
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
    });
    let result = tokio::time::timeout(LIMIT, async {
        let device = client::import(addr, busid.as_str()).await?;
        let speed = device.device().speed;
        let tree = device.enumerate(None).await?;
        Ok::<_, client::ClientError>((tree, speed))
    })
    .await;
    let _ = stop.send(());
    let _ = serving.await;
    drop(opened);
    match result {
        Ok(r) => Ok(r.context("enumerating the device")?),
        Err(_) => anyhow::bail!("enumerating the device took more than {LIMIT:?}"),
    }
}
