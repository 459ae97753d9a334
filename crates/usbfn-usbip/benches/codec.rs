//! The USB/IP codec on the URB path: CMD_SUBMIT decode (server), RET_SUBMIT encode (server),
//! CMD_SUBMIT encode and RET_SUBMIT decode (client). `cargo bench -p usbfn-usbip`.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use usbfn_usbip::proto::{
    ClientCodec, CmdSubmit, Command, Direction, Limits, Reply, RetSubmit, ServerCodec,
    TransferFlags,
};

fn cmd(seqnum: u32, direction: Direction, len: usize) -> CmdSubmit {
    let tbl = u32::try_from(len).expect("bench sizes fit");
    CmdSubmit {
        seqnum,
        devid: 0x0001_0002,
        direction,
        ep: 1,
        transfer_flags: if direction == Direction::In {
            TransferFlags::DIR_IN
        } else {
            TransferFlags::NONE
        },
        transfer_buffer_length: tbl,
        start_frame: 0,
        number_of_packets: 0,
        interval: 0,
        setup: [0; 8],
        data: if direction == Direction::Out {
            Bytes::from(vec![0u8; len])
        } else {
            Bytes::new()
        },
        iso: Vec::new(),
    }
}

fn ret(seqnum: u32, len: usize) -> RetSubmit {
    RetSubmit {
        seqnum,
        status: 0,
        actual_length: u32::try_from(len).expect("bench sizes fit"),
        start_frame: 0,
        number_of_packets: 0,
        error_count: 0,
        data: Bytes::from(vec![0u8; len]),
        iso: Vec::new(),
    }
}

/// The server side: 16 CMD_SUBMITs per buffer, decoded as they arrive.
fn server(c: &mut Criterion) {
    let mut g = c.benchmark_group("server");
    for (direction, len) in [
        (Direction::In, 65536usize),
        (Direction::Out, 512),
        (Direction::Out, 65536),
    ] {
        let mut wire = BytesMut::new();
        let mut client = ClientCodec::new(Limits::default());
        for seqnum in 1..=16 {
            client
                .encode_submit(&cmd(seqnum, direction, len), &mut wire)
                .expect("encodes");
        }
        g.throughput(Throughput::Elements(16));
        g.bench_function(format!("decode 16 CMD_SUBMIT {direction:?} {len}B"), |b| {
            let mut codec = ServerCodec::new(Limits::default());
            b.iter_batched_ref(
                || wire.clone(),
                |buf| {
                    while let Some(Command::Submit(c)) = codec.decode(buf).expect("decodes") {
                        black_box(c);
                    }
                },
                BatchSize::SmallInput,
            );
        });
    }
    for len in [512usize, 65536] {
        let r = ret(1, len);
        let mut out = BytesMut::with_capacity(len + 64);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(format!("encode RET_SUBMIT IN {len}B (copy)"), |b| {
            b.iter(|| {
                out.clear();
                r.encode(Direction::In, &mut out).expect("encodes");
                black_box(&out);
            });
        });
        g.bench_function(format!("encode RET_SUBMIT IN {len}B (header only)"), |b| {
            b.iter(|| {
                out.clear();
                r.encode_header(Direction::In, &mut out).expect("encodes");
                black_box(&out);
            });
        });
    }
    g.finish();
}

/// The client side: encode a CMD_SUBMIT, decode its RET_SUBMIT.
fn client(c: &mut Criterion) {
    let mut g = c.benchmark_group("client");
    for len in [512usize, 65536] {
        let mut reply = BytesMut::new();
        ret(1, len)
            .encode(Direction::In, &mut reply)
            .expect("encodes");
        let submit = cmd(1, Direction::In, len);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(format!("CMD_SUBMIT IN + RET_SUBMIT {len}B"), |b| {
            let mut codec = ClientCodec::new(Limits::default());
            let mut out = BytesMut::with_capacity(64);
            b.iter_batched_ref(
                || reply.clone(),
                |buf| {
                    out.clear();
                    codec
                        .encode_submit_header(&submit, &mut out)
                        .expect("encodes");
                    match codec.decode(buf).expect("decodes") {
                        Some(Reply::Submit(r)) => black_box(r),
                        other => panic!("unexpected {other:?}"),
                    };
                },
                BatchSize::SmallInput,
            );
        });
    }
    g.finish();
}

criterion_group!(benches, server, client);
criterion_main!(benches);
