//! The serial function against the in-process host: enumeration shape, class requests, data
//! both ways through the pty, SERIAL_STATE, and flow control.
#![allow(clippy::cast_possible_truncation)] // test patterns keep the low byte on purpose

use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use usbfn_core::{BusSpeed, CompletionStatus};
use usbfn_wire::{DescriptorType, Direction, Recipient, RequestType, SetupPacket};

use super::*;
use crate::Controller;
use crate::host::Host;

struct Rig {
    host: Host,
    path: std::path::PathBuf,
    _controller: Controller,
    _task: JoinHandle<()>,
    notify: u8,
    bulk_in: u8,
    bulk_out: u8,
}

/// Endpoint addresses of the configuration, in descriptor order.
fn endpoints(config: &[u8]) -> Vec<(u8, u8)> {
    usbfn_wire::descriptors(config)
        .filter_map(|d| {
            let d = d.expect("well formed").bytes;
            (d.get(1) == Some(&5)).then(|| (d[2], d[3] & 3))
        })
        .collect()
}

async fn rig() -> Rig {
    let controller = Controller::new(&config()).expect("device");
    let [c, d] = interface_names(0);
    let control = controller.open(&c).expect("control");
    let data = controller.open(&d).expect("data");
    let side = DeviceSide::open(&Options::default(), 0).expect("pty");
    let path = side.path().to_owned();
    let task = spawn(side, control, data);
    // Let both services activate.
    for _ in 0..100 {
        if controller.is_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let host = Host::connect(&controller, BusSpeed::High).expect("connect");
    let cfg = host
        .get_descriptor(DescriptorType::CONFIGURATION, 0, 512)
        .await
        .expect("config descriptor");
    let eps = endpoints(&cfg);
    let find = |dir: u8, ty: u8| {
        eps.iter()
            .find(|(a, t)| a & 0x80 == dir && *t == ty)
            .map(|(a, _)| a & 0x7f)
            .expect("endpoint")
    };
    let (notify, bulk_in, bulk_out) = (find(0x80, 3), find(0x80, 2), find(0, 2));
    host.set_configuration(1).await.expect("configure");
    Rig {
        host,
        path,
        _controller: controller,
        _task: task,
        notify,
        bulk_in,
        bulk_out,
    }
}

fn class(dir: Direction, request: u8, value: u16, index: u16, len: u16) -> SetupPacket {
    SetupPacket::new(
        dir,
        RequestType::Class,
        Recipient::Interface,
        request,
        value,
        index,
        len,
    )
}

fn open_slave(path: &std::path::Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open pty slave")
}

#[test]
fn descriptors_are_what_cdc_acm_parses() {
    let model = usbfn_core::DeviceModel::build(&config()).expect("valid");
    let set = model.descriptor_set(BusSpeed::High).expect("fits");
    let all: Vec<Vec<u8>> = usbfn_wire::descriptors(&set.configurations[0])
        .map(|d| d.expect("well formed").bytes.to_vec())
        .collect();
    // IAD, then interface 0 (2/2/1) with its functional descriptors, then the notification
    // endpoint; interface 1 (0x0A) with two bulk endpoints.
    assert_eq!(&all[1][..8], &[8, 0x0b, 0, 2, 2, 2, 1, all[1][7]]);
    assert_eq!(&all[2][..8], &[9, 4, 0, 0, 1, 2, 2, 1]);
    assert_eq!(all[3], [5, 0x24, 0, 0x10, 0x01]);
    assert_eq!(all[4], [5, 0x24, 1, 0, 1]);
    assert_eq!(all[5], [4, 0x24, 2, 2]);
    assert_eq!(all[6], [5, 0x24, 6, 0, 1]);
    assert_eq!(&all[7][3..], &[3, 10, 0, 9], "interrupt, 10 bytes, 32 ms");
    assert_eq!(&all[8][..8], &[9, 4, 1, 0, 2, 0x0a, 0, 0]);
    assert_eq!(all.len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_coding_and_control_lines() {
    let r = rig().await;
    let coding = [0x00, 0xe1, 0x00, 0x00, 0, 0, 8]; // 57600 8N1
    r.host
        .control(
            class(Direction::Out, cdc::SET_LINE_CODING, 0, 0, 7),
            Bytes::copy_from_slice(&coding),
        )
        .await
        .expect("SET_LINE_CODING");
    let got = r
        .host
        .control(
            class(Direction::In, cdc::GET_LINE_CODING, 0, 0, 7),
            Bytes::new(),
        )
        .await
        .expect("GET_LINE_CODING");
    assert_eq!(&got[..], &coding);
    let slave = open_slave(&r.path);
    let attrs = nix::sys::termios::tcgetattr(&slave).expect("attrs");
    assert_eq!(
        nix::sys::termios::cfgetispeed(&attrs),
        nix::sys::termios::BaudRate::B57600,
        "the device side sees the host's speed"
    );
    r.host
        .control(
            class(Direction::Out, cdc::SET_CONTROL_LINE_STATE, 3, 0, 0),
            Bytes::new(),
        )
        .await
        .expect("SET_CONTROL_LINE_STATE");
    r.host
        .control(
            class(Direction::Out, cdc::SEND_BREAK, 100, 0, 0),
            Bytes::new(),
        )
        .await
        .expect("SEND_BREAK");
    // A bad line coding, a request to the data interface, an unknown request: STALL.
    let bad = r
        .host
        .control(
            class(Direction::Out, cdc::SET_LINE_CODING, 0, 0, 7),
            Bytes::from_static(&[0, 0, 0, 0, 9, 0, 8]),
        )
        .await;
    assert!(matches!(bad, Err(Error::Transfer(CompletionStatus::Stall))));
    let wrong = r
        .host
        .control(
            class(Direction::Out, cdc::SET_CONTROL_LINE_STATE, 3, 1, 0),
            Bytes::new(),
        )
        .await;
    assert!(matches!(
        wrong,
        Err(Error::Transfer(CompletionStatus::Stall))
    ));
    let unknown = r
        .host
        .control(class(Direction::In, 0x01, 0, 0, 8), Bytes::new())
        .await;
    assert!(matches!(
        unknown,
        Err(Error::Transfer(CompletionStatus::Stall))
    ));
    // Still unchanged after the refused one.
    let got = r
        .host
        .control(
            class(Direction::In, cdc::GET_LINE_CODING, 0, 0, 64),
            Bytes::new(),
        )
        .await
        .expect("GET_LINE_CODING");
    assert_eq!(&got[..], &coding);
}

// Once hung (> 60 s) under parallel load: the pty master was registered with tokio while
// the slave was closed, and tokio never clears the "closed" readiness of that EPOLLHUP, so
// the read loop spun on EAGAIN once the slave was open (see pty.rs). Run it in parallel with
// the crate's other tests to check: `cargo test -p usbfn --lib`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_both_ways_and_serial_state() {
    let r = rig().await;
    let note = r.host.bulk_in(r.notify, 10);
    let mut slave = open_slave(&r.path);
    let note = tokio::time::timeout(Duration::from_secs(5), note)
        .await
        .expect("SERIAL_STATE after the device side opened the pty")
        .expect("urb");
    assert_eq!(&note.data[..], &cdc::serial_state(0, 3));

    // Host to device: 100 KiB in writes that end on full packets (no short packet).
    let payload: Vec<u8> = (0..100 * 1024u32)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    let host_side = {
        let chunks: Vec<Bytes> = payload.chunks(10240).map(Bytes::copy_from_slice).collect();
        let host = &r.host;
        let out = r.bulk_out;
        async move {
            for c in chunks {
                let done = host.bulk_out(out, c).await.expect("urb");
                assert_eq!(done.status, CompletionStatus::Success);
            }
        }
    };
    let reader = {
        let mut s = slave.try_clone().expect("clone");
        let n = payload.len();
        tokio::task::spawn_blocking(move || {
            let mut got = vec![0u8; n];
            s.read_exact(&mut got).expect("read from pty");
            got
        })
    };
    host_side.await;
    assert_eq!(reader.await.expect("reader"), payload);

    // A single write that ends on a full packet is delivered without waiting for more.
    r.host
        .bulk_out(r.bulk_out, Bytes::from(vec![0x5a; 1024]))
        .await
        .expect("urb");
    let mut got = [0u8; 1024];
    tokio::task::block_in_place(|| slave.read_exact(&mut got)).expect("read");
    assert_eq!(got, [0x5a; 1024]);

    // Device to host: 64 KiB written on the device side arrives in order.
    let back: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 253) as u8).collect();
    {
        let mut s = slave.try_clone().expect("clone");
        let b = back.clone();
        tokio::task::spawn_blocking(move || s.write_all(&b).expect("write pty"));
    }
    let mut got = Vec::new();
    while got.len() < back.len() {
        let c = r.host.bulk_in(r.bulk_in, 1024).await.expect("urb");
        assert_eq!(c.status, CompletionStatus::Success);
        got.extend_from_slice(&c.data);
    }
    assert_eq!(got, back);

    // Closing the device side drops the carrier.
    let note = r.host.bulk_in(r.notify, 10);
    drop(slave);
    let note = tokio::time::timeout(Duration::from_secs(5), note)
        .await
        .expect("SERIAL_STATE after the device side closed")
        .expect("urb");
    assert_eq!(&note.data[..], &cdc::serial_state(0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_data_waits_for_the_device_side_and_is_not_dropped() {
    let r = rig().await;
    // Nobody has the pty open: the OUT pipe is not served.
    let early = r.host.bulk_out(r.bulk_out, Bytes::from_static(b"early"));
    let pending = tokio::time::timeout(Duration::from_millis(300), early).await;
    assert!(
        pending.is_err(),
        "host data was taken while the device side was closed"
    );
    // The pty buffer fills when the device side does not read: the host is held back with a
    // bounded amount buffered, and nothing is lost when the reader finally drains.
    let mut slave = open_slave(&r.path);
    let total = 512 * 1024;
    let payload: Vec<u8> = (0..total as u32).map(|i| (i % 241) as u8).collect();
    let writes: Vec<_> = payload
        .chunks(16 * 1024)
        .map(|c| r.host.bulk_out(r.bulk_out, Bytes::copy_from_slice(c)))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reader = tokio::task::spawn_blocking(move || {
        let mut got = vec![0u8; 5 + total];
        slave.read_exact(&mut got).expect("read");
        got
    });
    for w in writes {
        assert_eq!(w.await.expect("urb").status, CompletionStatus::Success);
    }
    let got = reader.await.expect("reader");
    assert_eq!(&got[..5], b"early");
    assert_eq!(&got[5..], &payload[..]);
}

/// xorshift64*: reproducible randomness for the stress test (no crate needed for it).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

/// What the QEMU guest did over usbredir (`cat file >/dev/ttyACM0` while
/// `head -c 1048576 /dev/ttyACM0` reads it back, `cat <PTY >PTY` echoing on the device
/// side), with the stress turned up: 1 MiB of random bytes each way, the echo a slow reader
/// (small reads, random pauses), and the host unlinking IN URBs at random points and
/// submitting new ones (what usbredir's `cancel_data_packet` does when QEMU's host
/// controller drops a packet and fetches it again). Every byte must come back, once, in
/// order. It lost bytes when an unlinked IN URB held data already moved (full packets
/// waiting for the rest of the host's buffer): the core dropped them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_of_a_mebibyte_survives_backpressure_and_unlinked_in_urbs() {
    const TOTAL: usize = 1 << 20;
    let r = rig().await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let payload: Vec<u8> = (0..TOTAL).map(|_| rng.next() as u8).collect();

    // The device-side echo on a thread of its own (a plain thread: if bytes are lost it
    // blocks in read until the rig is dropped, and must not hold the runtime's shutdown).
    let slave = open_slave(&r.path);
    let echo = std::thread::spawn(move || -> std::io::Result<usize> {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut rd = slave.try_clone()?;
        let mut wr = slave;
        let mut buf = vec![0u8; 4096];
        let mut moved = 0;
        while moved < TOTAL {
            let want = if rng.below(3) == 0 {
                1 + rng.below(100) as usize
            } else {
                rng.pick(&[512usize, 1024, 2048, 4096])
            };
            let n = rd.read(&mut buf[..want.min(TOTAL - moved)])?;
            if n == 0 {
                break;
            }
            wr.write_all(&buf[..n])?;
            moved += n;
            if rng.below(4) == 0 {
                std::thread::sleep(Duration::from_micros(rng.below(3000)));
            }
        }
        Ok(moved)
    });

    // Host to device: tty-sized writes (the tty layer hands cdc-acm 2 KiB at a time), a
    // few URBs in flight.
    let writer = {
        let host = &r.host;
        let out = r.bulk_out;
        let chunks: Vec<Bytes> = payload.chunks(2048).map(Bytes::copy_from_slice).collect();
        async move {
            let mut inflight = std::collections::VecDeque::new();
            for c in chunks {
                if inflight.len() == 4 {
                    let done: crate::host::UrbFuture = inflight.pop_front().expect("in flight");
                    let done = done.await.expect("OUT urb");
                    assert_eq!(done.status, CompletionStatus::Success);
                }
                inflight.push_back(host.bulk_out(out, c));
            }
            for done in inflight {
                assert_eq!(
                    done.await.expect("OUT urb").status,
                    CompletionStatus::Success
                );
            }
        }
    };

    // Device to host: IN URBs of assorted sizes, four queued; at random points the front
    // one (or another) is unlinked and a new one queued behind the rest.
    let reader = {
        let host = &r.host;
        let inp = r.bulk_in;
        let expect = &payload;
        async move {
            let mut rng = Rng(0x0bad_cafe_f00d_d00d);
            let sizes = [512usize, 1024, 4096, 16384];
            let mut queue: std::collections::VecDeque<crate::host::UrbFuture> = (0..4)
                .map(|_| host.bulk_in(inp, rng.pick(&sizes)))
                .collect();
            let mut got: Vec<u8> = Vec::with_capacity(TOTAL);
            let mut unlinked = 0usize;
            while got.len() < TOTAL {
                if rng.below(4) == 0 {
                    let i = rng.below(queue.len() as u64) as usize;
                    if host.unlink(queue[i].id()) {
                        queue.remove(i);
                        unlinked += 1;
                        queue.push_back(host.bulk_in(inp, rng.pick(&sizes)));
                    }
                }
                let wait = Duration::from_micros(rng.below(2000));
                let front = queue.front_mut().expect("queued");
                let Ok(done) = tokio::time::timeout(wait, front).await else {
                    continue;
                };
                queue.pop_front();
                let done = done.expect("IN urb");
                assert_eq!(done.status, CompletionStatus::Success);
                let at = got.len();
                got.extend_from_slice(&done.data);
                let end = got.len().min(TOTAL);
                if got[at..end] != expect[at..end] {
                    let off = (at..end).find(|&i| got[i] != expect[i]).unwrap_or(at);
                    panic!(
                        "device to host: byte {off} differs (URB of {} bytes at {at}; {unlinked} URBs unlinked so far)",
                        done.data.len()
                    );
                }
                queue.push_back(host.bulk_in(inp, rng.pick(&sizes)));
                if rng.below(8) == 0 {
                    // A slow host reader too: the IN queue, then the pty, fill up behind it.
                    tokio::time::sleep(Duration::from_micros(rng.below(3000))).await;
                }
            }
            (got, unlinked)
        }
    };

    let both = async { tokio::join!(writer, reader).1 };
    let (got, unlinked) = match tokio::time::timeout(Duration::from_secs(120), both).await {
        Ok(v) => v,
        Err(_) => panic!("the echo did not come back in 120 s"),
    };
    assert_eq!(got.len(), TOTAL, "no bytes beyond the echo");
    assert!(got == payload, "byte-exact");
    assert!(unlinked > 0, "the host unlinked no pending URB");
    let moved = tokio::task::spawn_blocking(move || echo.join())
        .await
        .expect("join")
        .expect("echo thread")
        .expect("echo io");
    assert_eq!(moved, TOTAL);
}

/// `echo hello >PTY`: the device side opens the pty, writes and closes it at once, between
/// two carrier polls. The bytes are in the master and must reach the host, not wait for
/// the next time someone opens the pty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_of_a_quick_open_write_close_reach_the_host() {
    let r = rig().await;
    // Let the data path see the closed pty first.
    tokio::time::sleep(CARRIER_POLL * 3).await;
    for round in 0..3u8 {
        let text = [b'h', b'e', b'l', b'l', b'o', b'0' + round, b'\n'];
        {
            let mut slave = open_slave(&r.path);
            slave.write_all(&text).expect("write");
        }
        let got = tokio::time::timeout(Duration::from_secs(3), r.host.bulk_in(r.bulk_in, 512))
            .await
            .unwrap_or_else(|_| panic!("round {round}: the bytes stayed in the pty"))
            .expect("urb");
        assert_eq!(&got.data[..], &text[..], "round {round}");
    }
}
