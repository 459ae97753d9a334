//! Hot paths of the sans-IO core: packetization (bulk URBs meeting service transfers) and
//! setup handling (chapter-9 requests answered by the core). `cargo bench -p usbfn-core`.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use usbfn_core::testkit::SimHost;
use usbfn_core::{
    BusSpeed, CompletionStatus, Device, FunctionId, PipeId, TransferId, TransferRequest, Urb, UrbId,
};
use usbfn_wire::{DescriptorType, Direction, SetupPacket};

const CONFIG: &str = r#"
    [device]
    vendor_id = 0x1209
    product_id = 0x0001
    manufacturer = "usbfn"
    product = "bench"
    [[interfaces]]
    name = "loopback"
    endpoints = [{ direction = "in", type = "bulk" }, { direction = "out", type = "bulk" }]
"#;

const F: FunctionId = FunctionId(0);
const IN_PIPE: PipeId = PipeId(1);
const OUT_PIPE: PipeId = PipeId(2);

/// A configured high-speed device (wMaxPacketSize 512) with an active service.
fn configured() -> Device {
    let mut host = SimHost::new(CONFIG, BusSpeed::High);
    let c = host.set_configuration(1);
    assert_eq!(c.status, CompletionStatus::Success);
    host.drain_events(F);
    host.dev
}

fn control(setup: SetupPacket) -> Urb {
    Urb::control(UrbId(0), setup, Bytes::new())
}

fn bulk(direction: Direction, buffer_len: usize, data: Bytes) -> Urb {
    match direction {
        Direction::In => Urb::bulk_in(UrbId(0), 1, buffer_len),
        Direction::Out => Urb::bulk_out(UrbId(0), 1, data),
    }
}

/// One service transfer of `transfer` bytes moved by URBs of `urb` bytes, both directions.
fn packetization(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipe");
    for (transfer, urb) in [(65536usize, 65536usize), (65536, 512), (512, 512)] {
        g.throughput(Throughput::Bytes(transfer as u64));
        let data = Bytes::from(vec![0u8; transfer]);
        let urb_data = Bytes::from(vec![0u8; urb]);
        let mut d = configured();
        let now = Instant::now();
        let mut id = 0u64;
        g.bench_function(format!("in/{transfer}B transfer/{urb}B URBs"), |b| {
            b.iter(|| {
                id += 1;
                d.submit_transfer(
                    F,
                    TransferId(id),
                    IN_PIPE,
                    TransferRequest::In {
                        data: data.clone(),
                        append_zero_packet: false,
                    },
                    now,
                )
                .expect("queued");
                for _ in 0..transfer / urb {
                    d.submit_urb(bulk(Direction::In, urb, Bytes::new()), now);
                    black_box(d.poll_urb_completion());
                }
                black_box(d.poll_transfer_completion());
            });
        });
        g.bench_function(format!("out/{transfer}B transfer/{urb}B URBs"), |b| {
            b.iter(|| {
                id += 1;
                d.submit_transfer(
                    F,
                    TransferId(id),
                    OUT_PIPE,
                    TransferRequest::Out { capacity: transfer },
                    now,
                )
                .expect("queued");
                for _ in 0..transfer / urb {
                    d.submit_urb(bulk(Direction::Out, urb, urb_data.clone()), now);
                    black_box(d.poll_urb_completion());
                }
                black_box(d.poll_transfer_completion());
            });
        });
    }
    g.finish();
}

/// Chapter-9 requests the core answers without a service.
fn setup_handling(c: &mut Criterion) {
    let mut g = c.benchmark_group("setup");
    let now = Instant::now();
    for (name, setup) in [
        (
            "GET_DESCRIPTOR(DEVICE)",
            SetupPacket::get_descriptor(DescriptorType::DEVICE, 0, 0, 18),
        ),
        (
            "GET_DESCRIPTOR(CONFIGURATION)",
            SetupPacket::get_descriptor(DescriptorType::CONFIGURATION, 0, 0, 255),
        ),
        (
            "GET_DESCRIPTOR(STRING 2)",
            SetupPacket::get_descriptor(DescriptorType::STRING, 2, 0x0409, 255),
        ),
        ("GET_CONFIGURATION", SetupPacket::get_configuration()),
    ] {
        let mut d = configured();
        g.bench_function(name, |b| {
            b.iter(|| {
                d.submit_urb(control(black_box(setup)), now);
                black_box(d.poll_urb_completion())
            });
        });
    }
    g.bench_function("SET_CONFIGURATION(1) + events", |b| {
        b.iter_batched_ref(
            configured,
            |d| {
                d.submit_urb(control(SetupPacket::set_configuration(1)), now);
                black_box(d.poll_urb_completion());
                while d.poll_event(F).is_some() {}
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

criterion_group!(benches, packetization, setup_handling);
criterion_main!(benches);
