//! User story: "I want a USB device that echoes back whatever the host writes to it, and I
//! want to attach it to a Linux machine with `usbip attach`."
//!
//! A complete service written only against the public service API (`usbfn::Interface`):
//! it declares its device in TOML (the registry's twin), opens its interface by GUID, reads
//! its pipes from the class information, activates the bus, and after `Configured` keeps an
//! OUT transfer queued whose data goes straight back on the IN pipe (with a zero-length packet
//! when the length is a multiple of the packet size, so the host's read ends).
//!
//! ```sh
//! cargo run -p usbfn-usbip --example echo_service            # listens on 127.0.0.1:3240
//! sudo usbip attach -r 127.0.0.1 -b 1-1                      # on the host
//! ```

use std::sync::Arc;

use bytes::Bytes;
use usbfn::{BusEvent, BusSpeed, Controller, DeviceConfig, Interface, PipeId};
use usbfn_usbip::server::Server;
use usbfn_wire::Direction;

const GUID: &str = "{e4c40f2e-8b6e-4f5a-9a51-6f2d3c1b0e11}";

const DEVICE: &str = r#"
    [device]
    vendor_id = 0x1209      # pid.codes test VID
    product_id = 0x0001
    manufacturer = "usbfn examples"
    product = "Echo"

    [[interfaces]]
    name = "echo"
    guid = "{e4c40f2e-8b6e-4f5a-9a51-6f2d3c1b0e11}"
    class = 0xff
    endpoints = [
        { direction = "in", type = "bulk" },
        { direction = "out", type = "bulk" },
    ]
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let controller = Controller::new(&DeviceConfig::from_toml(DEVICE)?)?;
    let iface = controller.open(GUID)?;

    let mut builder = Server::builder();
    let busid = builder.export(controller.clone(), BusSpeed::High)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3240").await?;
    println!("echo device exported as {busid}: usbip attach -r 127.0.0.1 -b {busid}");
    let server = builder.build();
    tokio::spawn(async move { server.serve(listener, std::future::pending()).await });

    run_echo(iface).await?;
    Ok(())
}

/// The service: echo OUT data back on IN.
async fn run_echo(iface: Interface) -> Result<(), usbfn::Error> {
    let iface = Arc::new(iface);
    let info = iface.class_info()?;
    let mut speed = BusSpeed::High;
    iface.activate_bus()?;
    loop {
        match iface.next_event().await? {
            BusEvent::Reset(s) => speed = s,
            BusEvent::Configured(_) => {
                let pipes = &info.at(speed).pipes;
                let find = |dir: Direction| {
                    pipes
                        .iter()
                        .find(|(d, _)| d.b_endpoint_address.direction() == dir)
                        .map(|(_, p)| *p)
                };
                if let (Some(pipe_in), Some(pipe_out)) = (find(Direction::In), find(Direction::Out))
                {
                    tokio::spawn(echo(iface.clone(), pipe_in, pipe_out));
                }
            }
            // Class or vendor requests are not part of this function: refuse them.
            BusEvent::SetupPacket(_) => iface.set_pipe_state(PipeId::CONTROL, true)?,
            _ => {}
        }
    }
}

async fn echo(iface: Arc<Interface>, pipe_in: PipeId, pipe_out: PipeId) {
    // Ends when a reset, detach or unconfigure cancels the transfers.
    while let Ok(received) = iface.transfer_out(pipe_out, 64 * 1024).await {
        let data: Bytes = received.data;
        if iface.transfer_in_append_zero(pipe_in, data).await.is_err() {
            return;
        }
    }
}
