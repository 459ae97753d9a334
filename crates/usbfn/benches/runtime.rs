//! The runtime's per-URB cost: the in-process host against Gadget Zero on a current-thread
//! runtime (no cross-thread wake-ups, so what is left is the controller's locking, dispatch
//! and channels). `cargo bench -p usbfn`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use usbfn::functions::gadget_zero;
use usbfn::host::Host;
use usbfn::{BusSpeed, Controller};
use usbfn_wire::{DescriptorType, Direction, Recipient, RequestType, SetupPacket};

fn runtime(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (host, _controller) = rt.block_on(async {
        let controller = Controller::new(&gadget_zero::config()).expect("gadget zero");
        let iface = controller.open(gadget_zero::INTERFACE_NAME).expect("open");
        let options = gadget_zero::Options {
            qlen: 64,
            buflen: 64 * 1024,
            ..Default::default()
        };
        tokio::spawn(gadget_zero::run(iface, options));
        let mut ready = controller.ready_watch();
        ready.wait_for(|r| *r).await.expect("ready");
        let host = Host::connect(&controller, BusSpeed::High).expect("connect");
        host.set_configuration(1).await.expect("configure");
        // The source queues its transfers from its own task: one URB proves it has.
        host.bulk_in(1, 512).await.expect("source runs");
        (host, controller)
    });
    let mut g = c.benchmark_group("in-process");
    for depth in [1usize, 16] {
        g.throughput(Throughput::Elements(depth as u64));
        g.bench_function(format!("bulk IN 512 B x {depth}"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let urbs: Vec<_> = (0..depth).map(|_| host.bulk_in(1, 512)).collect();
                    for u in urbs {
                        black_box(u.await.expect("completes"));
                    }
                });
            });
        });
        g.bench_function(format!("bulk OUT 512 B x {depth}"), |b| {
            let data = bytes::Bytes::from(vec![0u8; 512]);
            b.iter(|| {
                rt.block_on(async {
                    let urbs: Vec<_> = (0..depth).map(|_| host.bulk_out(1, data.clone())).collect();
                    for u in urbs {
                        black_box(u.await.expect("completes"));
                    }
                });
            });
        });
    }
    g.throughput(Throughput::Elements(1));
    let device = SetupPacket::get_descriptor(DescriptorType::DEVICE, 0, 0, 18);
    g.bench_function("control GET_DESCRIPTOR (core answers)", |b| {
        b.iter(|| {
            rt.block_on(async { black_box(host.control(device, bytes::Bytes::new()).await) })
        });
    });
    let vendor = SetupPacket::new(
        Direction::In,
        RequestType::Vendor,
        Recipient::Device,
        gadget_zero::REQUEST_READ,
        0,
        0,
        64,
    );
    g.bench_function("control vendor read (service answers)", |b| {
        b.iter(|| {
            rt.block_on(async { black_box(host.control(vendor, bytes::Bytes::new()).await) })
        });
    });
    g.finish();
}

criterion_group!(benches, runtime);
criterion_main!(benches);
