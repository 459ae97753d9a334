//! Fault injection against the USB/IP server over real loopback TCP: peers that disconnect
//! at every phase, unlink storms, invalid seqnums and devids, oversized lengths, iso
//! descriptors that disagree with the data, half messages and silence, many connections,
//! floods. The server exports Gadget Zero (`1-1`) and a device whose IN endpoints never
//! have data (`1-2`).
//!
//! Invariants checked throughout: nothing panics (a hook counts panics in any task, checked
//! at every server shutdown) and the server keeps serving; a fault on one
//! connection leaves other devices and connections working; every URB the server accepts on
//! a connection that stays up gets exactly one answer (RET_SUBMIT, or RET_UNLINK with
//! -ECONNRESET); memory stays bounded under floods (VmRSS of this process, which holds both
//! the server and the peers, printed with `eprintln!`).
//!
//! Tests that measure memory or load the machine take [`EXCLUSIVE`] for writing; the others
//! share it, so the figures are not mixed with other tests' allocations.

#![allow(clippy::cast_possible_truncation)] // test sizes and seqnums are small by construction

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::RwLock;
use usbfn::{BusSpeed, Controller, DeviceConfig};
use usbfn_usbip::client::{self, Urb};
use usbfn_usbip::proto::{
    ClientCodec, CmdSubmit, CmdUnlink, Direction, IsoPacketDescriptor, Limits, Reply,
    TransferFlags, errno,
};
use usbfn_usbip::server::{Server, ServerOptions};

mod common;
use common::{Fixture, STEP, Setup, assert_no_panics, count_panics};

/// Taken for writing by tests that measure memory or load the machine.
static EXCLUSIVE: RwLock<()> = RwLock::const_new(());

/// Device ids of the two exports (`busnum << 16 | devnum`).
const GZ: u32 = 0x0001_0002;
const IDLE_DEV: u32 = 0x0001_0003;

async fn start(options: ServerOptions) -> Fixture {
    common::start(Setup {
        server: options,
        ..Setup::default()
    })
    .await
}

impl Fixture {
    /// Gadget Zero still enumerates and streams.
    async fn gz_works(&self) {
        let dev = self.import("1-1").await;
        dev.set_configuration(1).await.expect("configure");
        let c = tokio::time::timeout(STEP, dev.submit(Urb::bulk_in(1, 4096)))
            .await
            .expect("bulk IN in time")
            .expect("submit")
            .into_result()
            .expect("bulk IN ok");
        assert_eq!(c.data.len(), 4096);
        let c = dev
            .submit(Urb::bulk_out(1, vec![0u8; 1024]))
            .await
            .expect("submit");
        assert_eq!((c.status, c.actual_length), (0, 1024));
    }

    /// The idle device still imports and answers control requests.
    async fn idle_works(&self) {
        let dev = self.import("1-2").await;
        dev.set_configuration(1).await.expect("configure idle");
        let status = dev.control_in(get_status()).await.expect("GET_STATUS");
        assert_eq!(status.len(), 2);
    }
}

fn get_status() -> usbfn_wire::SetupPacket {
    usbfn_wire::SetupPacket::from_bytes([0x80, 0x00, 0, 0, 0, 0, 2, 0])
}

/// Faults injected by this test binary (printed by each test for the note).
static FAULTS: AtomicU64 = AtomicU64::new(0);

fn fault(n: u64) {
    FAULTS.fetch_add(n, Ordering::Relaxed);
}

fn report(test: &str, faults: u64) {
    eprintln!(
        "[faults] {test}: {faults} faults injected ({} so far in this binary)",
        FAULTS.load(Ordering::Relaxed)
    );
}

// ----- raw peers ------------------------------------------------------------------------

fn op_import(busid: &str) -> Vec<u8> {
    let mut req = BytesMut::new();
    req.put_u16(0x0111);
    req.put_u16(0x8003);
    req.put_u32(0);
    let mut field = [0u8; 32];
    field[..busid.len()].copy_from_slice(busid.as_bytes());
    req.put_slice(&field);
    req.to_vec()
}

/// A host speaking raw USB/IP, with [`ClientCodec`] checking every reply strictly (unknown
/// seqnums, RET_UNLINK statuses that contradict RET_SUBMITs, lengths beyond buffers).
struct Peer {
    s: TcpStream,
    codec: ClientCodec,
    rx: BytesMut,
    next_seqnum: u32,
}

impl Peer {
    /// Import `busid` raw, retrying while it is busy.
    async fn import(addr: SocketAddr, busid: &str) -> Peer {
        Peer::import_with(addr, busid, None).await
    }

    /// [`Peer::import`] with a small receive buffer (`SO_RCVBUF`), so that the server's
    /// writes block as soon as the host stops reading.
    async fn import_with(addr: SocketAddr, busid: &str, rcvbuf: Option<u32>) -> Peer {
        let deadline = Instant::now() + STEP;
        loop {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            if let Some(size) = rcvbuf {
                socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
            }
            let mut s = socket.connect(addr).await.expect("connect");
            s.write_all(&op_import(busid)).await.expect("write import");
            let mut header = [0u8; 8];
            s.read_exact(&mut header).await.expect("import reply");
            if header[4..8] == [0, 0, 0, 0] {
                let mut block = [0u8; 312];
                s.read_exact(&mut block).await.expect("device block");
                return Peer {
                    s,
                    codec: ClientCodec::new(Limits {
                        max_outstanding_urbs: 100_000,
                        ..Limits::DEFAULT
                    }),
                    rx: BytesMut::new(),
                    next_seqnum: 1,
                };
            }
            assert!(Instant::now() < deadline, "{busid} stays busy");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn seqnum(&mut self) -> u32 {
        let s = self.next_seqnum;
        self.next_seqnum += 1;
        s
    }

    /// Encode a submit (checked by the codec) into `out`; returns its seqnum.
    fn submit_into(&mut self, mut cmd: CmdSubmit, out: &mut BytesMut) -> u32 {
        cmd.seqnum = self.seqnum();
        self.codec.encode_submit(&cmd, out).expect("valid URB");
        cmd.seqnum
    }

    /// Encode a submit with the seqnum it carries (checked by the codec).
    fn submit_as_into(&mut self, cmd: &CmdSubmit, out: &mut BytesMut) {
        self.codec.encode_submit(cmd, out).expect("valid URB");
    }

    fn unlink_into(&mut self, devid: u32, target: u32, out: &mut BytesMut) -> u32 {
        let seqnum = self.seqnum();
        let cmd = CmdUnlink {
            seqnum,
            devid,
            direction: Direction::In,
            ep: 1,
            unlink_seqnum: target,
        };
        self.codec.encode_unlink(&cmd, out).expect("valid unlink");
        seqnum
    }

    async fn send(&mut self, bytes: &[u8]) {
        tokio::time::timeout(STEP, self.s.write_all(bytes))
            .await
            .expect("write in time")
            .expect("write");
    }

    async fn submit(&mut self, cmd: CmdSubmit) -> u32 {
        let mut out = BytesMut::new();
        let seqnum = self.submit_into(cmd, &mut out);
        self.send(&out).await;
        seqnum
    }

    /// The next reply; `None` when the server closed the connection.
    async fn recv(&mut self) -> Option<Reply> {
        loop {
            if let Some(r) = self
                .codec
                .decode(&mut self.rx)
                .expect("reply obeys the protocol")
            {
                return Some(r);
            }
            let n = tokio::time::timeout(STEP, self.s.read_buf(&mut self.rx))
                .await
                .expect("a reply in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    async fn recv_some(&mut self) -> Reply {
        self.recv().await.expect("connection still open")
    }

    /// Write `rest` while reading replies, until `expected` URBs are answered; returns the
    /// answers per seqnum (RET_SUBMIT, or the RET_UNLINK that cancelled it).
    async fn exchange(&mut self, rest: &[u8], expected: usize) -> HashMap<u32, u32> {
        let mut answers: HashMap<u32, u32> = HashMap::new();
        let mut pos = 0;
        let deadline = tokio::time::Instant::now() + STEP * 3;
        while answers.values().sum::<u32>() < expected as u32 {
            while let Some(r) = self
                .codec
                .decode(&mut self.rx)
                .expect("reply obeys the protocol")
            {
                match r {
                    Reply::Submit(r) => {
                        assert_eq!(r.status, 0, "URB {}", r.seqnum);
                        *answers.entry(r.seqnum).or_default() += 1;
                    }
                    Reply::Unlink {
                        unlink_seqnum,
                        cancelled: true,
                        ..
                    } => *answers.entry(unlink_seqnum).or_default() += 1,
                    Reply::Unlink { .. } => {}
                }
            }
            if answers.values().sum::<u32>() >= expected as u32 {
                break;
            }
            tokio::select! {
                r = self.s.readable() => {
                    r.expect("readable");
                    match self.s.try_read_buf(&mut self.rx) {
                        Ok(0) => panic!("the server closed the connection"),
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => panic!("read: {e}"),
                    }
                }
                w = self.s.writable(), if pos < rest.len() => {
                    w.expect("writable");
                    match self.s.try_write(&rest[pos..]) {
                        Ok(n) => pos += n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => panic!("write: {e}"),
                    }
                }
                () = tokio::time::sleep_until(deadline) => panic!(
                    "{} of {expected} URBs answered in {:?}", answers.values().sum::<u32>(), STEP * 3
                ),
            }
        }
        assert!(answers.values().all(|&n| n == 1), "a URB answered twice");
        answers
    }

    /// SET_CONFIGURATION(1) on `devid`.
    async fn configure(&mut self, devid: u32) {
        self.submit(control(
            devid,
            [0x00, 9, 1, 0, 0, 0, 0, 0],
            Direction::Out,
            0,
        ))
        .await;
        match self.recv_some().await {
            Reply::Submit(r) => assert_eq!(r.status, 0, "SET_CONFIGURATION"),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn cmd(devid: u32, direction: Direction, ep: u8, len: u32) -> CmdSubmit {
    CmdSubmit {
        seqnum: 0,
        devid,
        direction,
        ep,
        transfer_flags: if direction == Direction::In {
            TransferFlags::DIR_IN
        } else {
            TransferFlags::NONE
        },
        transfer_buffer_length: len,
        start_frame: 0,
        number_of_packets: 0,
        interval: 0,
        setup: [0; 8],
        data: if direction == Direction::Out {
            Bytes::from(vec![0u8; len as usize])
        } else {
            Bytes::new()
        },
        iso: Vec::new(),
    }
}

fn control(devid: u32, setup: [u8; 8], direction: Direction, len: u32) -> CmdSubmit {
    CmdSubmit {
        setup,
        ..cmd(devid, direction, 0, len)
    }
}

fn raw_header(words: [u32; 10]) -> Vec<u8> {
    let mut b = BytesMut::new();
    for w in words {
        b.put_u32(w);
    }
    b.put_slice(&[0u8; 8]);
    b.to_vec()
}

/// Wait until the server closes `s` (EOF or reset); fails after `within`.
async fn closed_by_server(mut s: TcpStream, within: Duration) -> Duration {
    let t = Instant::now();
    let mut sink = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout_at((t + within).into(), s.read(&mut sink)).await {
            Err(_) => panic!("server did not close the connection within {within:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return t.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

// ----- memory ---------------------------------------------------------------------------

/// VmRSS of this process in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples VmRSS every 5 ms on a thread of its own until dropped; `peak()` is the highest.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start() -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kib()));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        RssSampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn peak(&self) -> u64 {
        self.peak
            .fetch_max(rss_kib(), Ordering::Relaxed)
            .max(rss_kib())
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ----- tests ------------------------------------------------------------------------------

/// A host that submits large IN URBs to Gadget Zero and never reads the replies: the data
/// Gadget Zero produces for them can only pile up in the server. The server holds at most
/// `max_outstanding_bytes` of URBs (not reading a host that submits more until it takes
/// replies), and drops a host that takes no replies for `idle_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_of_unread_in_urbs_is_bounded() {
    let _x = EXCLUSIVE.write().await;
    const URB: u32 = 1024 * 1024;
    const LIMIT: usize = 64 * 1024 * 1024;
    let fx = start(ServerOptions {
        max_outstanding_bytes: LIMIT,
        idle_timeout: Duration::from_secs(3),
        ..ServerOptions::default()
    })
    .await;
    let before = rss_kib();
    let sampler = RssSampler::start();

    // 1. Up to the limit: the server accepts them all and Gadget Zero fills them.
    let mut peer = Peer::import(fx.addr, "1-1").await;
    peer.configure(GZ).await;
    let mut out = BytesMut::new();
    let at_limit = LIMIT / URB as usize;
    for _ in 0..at_limit {
        peer.submit_into(cmd(GZ, Direction::In, 1, URB), &mut out);
    }
    peer.send(&out).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = sampler.peak();
    // 2. We never read the replies: after idle_timeout the server drops us, which shows as
    //    Gadget Zero being free to import again (reading would un-stall the server).
    let t = Instant::now();
    let again = fx.import("1-1").await;
    let dropped_after = t.elapsed();
    drop(again);
    drop(peer);
    eprintln!(
        "[rss] {at_limit} x 1 MiB unread IN URBs (max_outstanding_bytes 64 MiB): VmRSS {} -> {} MiB; \
         the server dropped the stalled reader after {dropped_after:?} (idle_timeout 3 s)",
        before / 1024,
        held / 1024
    );

    // 3. Past the limit: the server stops reading (backpressure) instead of dropping the
    //    host. Twice the window is queued; the host's writes stall once the window and the
    //    socket buffers are full, and when it reads, every URB comes back exactly once.
    let mut peer = Peer::import(fx.addr, "1-1").await;
    peer.configure(GZ).await;
    const PAST: usize = 2 * LIMIT / URB as usize;
    let mut out = BytesMut::new();
    let mut urbs = Vec::new();
    for _ in 0..PAST {
        urbs.push(peer.submit_into(cmd(GZ, Direction::In, 1, URB), &mut out));
    }
    // IN commands are small: they all fit in the socket buffers, and the server reads only
    // what fits in its window. What it holds meanwhile is bounded by that window.
    peer.send(&out).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held_past = sampler.peak();
    let answers = peer.exchange(&[], PAST).await;
    assert!(urbs.iter().all(|u| answers.get(u) == Some(&1)));
    drop(peer);
    let sent = PAST as u64;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peak = sampler.peak();
    drop(sampler);
    let after = rss_kib();
    let growth_mib = peak.saturating_sub(before) / 1024;
    let faults = at_limit as u64 + sent;
    fault(faults);
    eprintln!(
        "[rss] unread IN flood past the limit: {PAST} x 1 MiB queued, VmRSS {} MiB while the host \
         did not read; then all {PAST} answered once; VmRSS before {} MiB, peak {} MiB \
         (growth {growth_mib} MiB), after {} MiB",
        held_past / 1024,
        before / 1024,
        peak / 1024,
        after / 1024
    );
    fx.gz_works().await;
    fx.idle_works().await;
    fx.shutdown().await;
    report("flood_of_unread_in_urbs_is_bounded", faults);
    assert!(
        growth_mib < 64 + 192,
        "RSS grew by {growth_mib} MiB with max_outstanding_bytes 64 MiB"
    );
}

/// A background host that keeps using a device and fails the test if anything it does
/// fails: the "other device" of every fault.
struct Bystander {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl Bystander {
    /// Stream bulk IN from Gadget Zero (`1-1`).
    async fn gadget_zero(fx: &Fixture) -> Bystander {
        let dev = Arc::new(fx.import("1-1").await);
        dev.set_configuration(1).await.expect("configure");
        Bystander::run(move || {
            let dev = dev.clone();
            async move {
                let c = dev.submit(Urb::bulk_in(1, 4096)).await;
                let c = c.expect("bystander URB").into_result().expect("ok");
                assert_eq!(c.data.len(), 4096);
            }
        })
    }

    /// Control requests to the idle device (`1-2`).
    async fn idle(fx: &Fixture) -> Bystander {
        let dev = Arc::new(fx.import("1-2").await);
        dev.set_configuration(1).await.expect("configure");
        Bystander::run(move || {
            let dev = dev.clone();
            async move {
                let status = dev.control_in(get_status()).await;
                assert_eq!(status.expect("bystander GET_STATUS").len(), 2);
            }
        })
    }

    fn run<F, Fut>(mut op: F) -> Bystander
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut done = 0u64;
            while !flag.load(Ordering::Relaxed) {
                tokio::time::timeout(STEP, op())
                    .await
                    .expect("bystander request answered in time");
                done += 1;
                tokio::task::yield_now().await;
            }
            done
        });
        Bystander { stop, task }
    }

    /// Stop; the requests it completed (at least one).
    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let done = tokio::time::timeout(STEP, self.task)
            .await
            .expect("bystander stops")
            .expect("bystander never failed");
        assert!(done > 0, "the bystander made no progress");
        done
    }
}

/// A raw TCP stream with `busid` imported (retrying while it is busy).
async fn raw_import(addr: SocketAddr, busid: &str) -> TcpStream {
    Peer::import(addr, busid).await.s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_disconnect_at_every_phase() {
    let _s = EXCLUSIVE.read().await;
    let fx = start(ServerOptions::default()).await;
    let mut faults = 0u64;

    // Faults on Gadget Zero while a host keeps using the idle device.
    let bystander = Bystander::idle(&fx).await;
    // Op phase: connect and go; a third of a header; half an import; a whole import whose
    // reply is never read; an import closed right after its reply.
    drop(TcpStream::connect(fx.addr).await.expect("connect"));
    let mut s = TcpStream::connect(fx.addr).await.expect("connect");
    s.write_all(&[0x01, 0x11, 0x80]).await.expect("write");
    drop(s);
    let mut s = TcpStream::connect(fx.addr).await.expect("connect");
    s.write_all(&op_import("1-1")[..18]).await.expect("write");
    drop(s);
    let mut s = TcpStream::connect(fx.addr).await.expect("connect");
    s.write_all(&op_import("1-1")).await.expect("write");
    drop(s);
    drop(raw_import(fx.addr, "1-1").await);
    faults += 5;
    // URB phase: in the middle of a header; in the middle of OUT data; in the middle of
    // iso descriptors; right after a burst of URBs; in the middle of an unlink.
    let mut s = raw_import(fx.addr, "1-1").await;
    s.write_all(&raw_header([1, 1, GZ, 0, 1, 0, 512, 0, 0, 0])[..20])
        .await
        .expect("write");
    drop(s);
    let mut peer = Peer::import(fx.addr, "1-1").await;
    peer.configure(GZ).await;
    let mut out = BytesMut::new();
    peer.submit_into(cmd(GZ, Direction::Out, 1, 65536), &mut out);
    peer.send(&out[..48 + 1000]).await;
    drop(peer);
    let mut peer = Peer::import(fx.addr, "1-1").await;
    let mut iso = cmd(GZ, Direction::Out, 1, 256);
    iso.number_of_packets = 4;
    iso.iso = (0..4)
        .map(|k| IsoPacketDescriptor {
            offset: k * 64,
            length: 64,
            actual_length: 0,
            status: 0,
        })
        .collect();
    let mut out = BytesMut::new();
    peer.submit_into(iso, &mut out);
    peer.send(&out[..48 + 256 + 16]).await;
    drop(peer);
    let mut peer = Peer::import(fx.addr, "1-1").await;
    peer.configure(GZ).await;
    let mut out = BytesMut::new();
    for _ in 0..200 {
        peer.submit_into(cmd(GZ, Direction::In, 1, 4096), &mut out);
    }
    peer.send(&out).await;
    drop(peer);
    let mut peer = Peer::import(fx.addr, "1-1").await;
    peer.configure(GZ).await;
    let mut out = BytesMut::new();
    let target = peer.submit_into(cmd(GZ, Direction::In, 1, 512), &mut out);
    peer.unlink_into(GZ, target, &mut out);
    let cut = out.len() - 30;
    peer.send(&out[..cut]).await;
    drop(peer);
    faults += 5;
    fx.gz_works().await;
    let done_idle = bystander.finish().await;

    // Faults on the idle device while a host streams from Gadget Zero: a thousand pending
    // URBs (the device never answers them), then gone; a hundred unlinks, then gone before
    // reading a single reply; a flood of control URBs, then gone while the server writes.
    let bystander = Bystander::gadget_zero(&fx).await;
    let mut peer = Peer::import(fx.addr, "1-2").await;
    peer.configure(IDLE_DEV).await;
    let mut out = BytesMut::new();
    for _ in 0..1000 {
        peer.submit_into(cmd(IDLE_DEV, Direction::In, 1, 512), &mut out);
    }
    peer.send(&out).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(peer);
    let mut peer = Peer::import(fx.addr, "1-2").await;
    peer.configure(IDLE_DEV).await;
    let mut out = BytesMut::new();
    let targets: Vec<u32> = (0..100)
        .map(|_| peer.submit_into(cmd(IDLE_DEV, Direction::In, 1, 512), &mut out))
        .collect();
    for t in targets {
        peer.unlink_into(IDLE_DEV, t, &mut out);
    }
    peer.send(&out).await;
    drop(peer);
    let mut peer = Peer::import(fx.addr, "1-2").await;
    let mut out = BytesMut::new();
    for _ in 0..1000 {
        peer.submit_into(
            control(IDLE_DEV, get_status().to_bytes(), Direction::In, 2),
            &mut out,
        );
    }
    peer.send(&out).await;
    drop(peer);
    faults += 3;
    fx.idle_works().await;
    let done_gz = bystander.finish().await;

    // Shut down with a half message and pending URBs in flight.
    let mut half = raw_import(fx.addr, "1-1").await;
    half.write_all(&[0, 0, 0, 1]).await.expect("write");
    let mut pending = Peer::import(fx.addr, "1-2").await;
    pending.configure(IDLE_DEV).await;
    pending.submit(cmd(IDLE_DEV, Direction::In, 1, 512)).await;
    let silent = TcpStream::connect(fx.addr).await.expect("connect");
    faults += 3;
    fx.shutdown().await;
    closed_by_server(half, STEP).await;
    closed_by_server(silent, STEP).await;
    fault(faults);
    eprintln!("bystanders completed {done_idle} + {done_gz} requests during the faults");
    report("peers_that_disconnect_at_every_phase", faults);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlink_storms_answer_every_urb_exactly_once() {
    let _s = EXCLUSIVE.read().await;
    let fx = start(ServerOptions::default()).await;
    let bystander = Bystander::gadget_zero(&fx).await;

    // The idle device never completes its bulk IN URBs: every one must come back through
    // its unlink (-ECONNRESET), the control URBs among them through RET_SUBMIT.
    let mut peer = Peer::import(fx.addr, "1-2").await;
    peer.configure(IDLE_DEV).await;
    let mut out = BytesMut::new();
    let mut urbs = Vec::new();
    let mut bulk = Vec::new();
    // 1000 in all: max_outstanding_urbs (1024) holds even if no control URB is answered yet.
    for i in 0..975 {
        let u = peer.submit_into(cmd(IDLE_DEV, Direction::In, 1, 512), &mut out);
        urbs.push(u);
        bulk.push(u);
        if i % 39 == 0 {
            let c = control(IDLE_DEV, get_status().to_bytes(), Direction::In, 2);
            urbs.push(peer.submit_into(c, &mut out));
        }
    }
    peer.send(&out).await;
    let mut out = BytesMut::new();
    let mut unlinks = 0usize;
    for &u in &urbs {
        peer.unlink_into(IDLE_DEV, u, &mut out);
        unlinks += 1;
    }
    // Unlinks of seqnums never used, and second unlinks of the first hundred URBs.
    for k in 0..200 {
        peer.unlink_into(IDLE_DEV, 900_000 + k, &mut out);
        unlinks += 1;
    }
    for &u in urbs.iter().take(100) {
        peer.unlink_into(IDLE_DEV, u, &mut out);
        unlinks += 1;
    }
    peer.send(&out).await;
    let mut answers: std::collections::HashMap<u32, u32> = Default::default();
    let mut cancelled_urbs = std::collections::HashSet::new();
    let (mut cancelled, mut ret_unlinks) = (0usize, 0usize);
    while ret_unlinks < unlinks || answers.len() < urbs.len() {
        match peer.recv_some().await {
            Reply::Submit(r) => *answers.entry(r.seqnum).or_default() += 1,
            Reply::Unlink {
                ret,
                unlink_seqnum,
                cancelled: c,
            } => {
                ret_unlinks += 1;
                if c {
                    assert_eq!(ret.status, -errno::ECONNRESET);
                    cancelled += 1;
                    cancelled_urbs.insert(unlink_seqnum);
                    *answers.entry(unlink_seqnum).or_default() += 1;
                }
            }
        }
    }
    assert!(answers.values().all(|&n| n == 1), "an URB answered twice");
    assert!(
        urbs.iter().all(|u| answers.get(u) == Some(&1)),
        "an URB never answered"
    );
    // A control URB whose RET_SUBMIT was still queued when its unlink came is cancelled too.
    assert!(
        bulk.iter().all(|u| cancelled_urbs.contains(u)),
        "every pending bulk URB cancelled by its unlink"
    );
    assert!(cancelled >= bulk.len());
    assert_eq!(peer.codec.outstanding(), 0);
    let idle_faults = unlinks as u64;

    // Gadget Zero completes URBs while their unlinks arrive: each URB gets exactly one
    // answer either way, and RET_UNLINK agrees with it (the codec checks).
    let streamed = bystander.finish().await;
    const RACES: usize = 200;
    let mut dev = Peer::import(fx.addr, "1-1").await;
    dev.configure(GZ).await;
    let mut out = BytesMut::new();
    let mut urbs = Vec::new();
    for _ in 0..RACES {
        urbs.push(dev.submit_into(cmd(GZ, Direction::In, 1, 256 * 1024), &mut out));
    }
    dev.send(&out).await;
    // Newest first: those are still waiting for data when their unlink arrives, while the
    // pipe completes the oldest ones under the unlinks' feet.
    let mut out = BytesMut::new();
    for &u in urbs.iter().rev() {
        dev.unlink_into(GZ, u, &mut out);
    }
    dev.send(&out).await;
    let mut answers: std::collections::HashMap<u32, u32> = Default::default();
    let (mut race_cancelled, mut ret_unlinks) = (0usize, 0usize);
    while ret_unlinks < urbs.len() || answers.len() < urbs.len() {
        match dev.recv_some().await {
            Reply::Submit(r) => *answers.entry(r.seqnum).or_default() += 1,
            Reply::Unlink {
                unlink_seqnum,
                cancelled,
                ..
            } => {
                ret_unlinks += 1;
                if cancelled {
                    race_cancelled += 1;
                    *answers.entry(unlink_seqnum).or_default() += 1;
                }
            }
        }
    }
    assert!(answers.values().all(|&n| n == 1));
    assert_eq!(dev.codec.outstanding(), 0);
    // Both connections still work.
    dev.submit(control(GZ, get_status().to_bytes(), Direction::In, 2))
        .await;
    assert!(matches!(dev.recv_some().await, Reply::Submit(r) if r.status == 0));
    peer.configure(IDLE_DEV).await;
    let faults = idle_faults + RACES as u64;
    fault(faults);
    eprintln!(
        "unlink storm: {unlinks} unlinks on the idle device ({cancelled} cancelled); \
         {RACES} submit+unlink races on Gadget Zero ({race_cancelled} cancelled, {} completed first); \
         the Gadget Zero bystander streamed {streamed} URBs before",
        RACES - race_cancelled
    );
    drop((dev, peer));
    fx.shutdown().await;
    report("unlink_storms_answer_every_urb_exactly_once", faults);
}

/// vhci-hcd sends queued unlinks in a loop of their own, so a URB submitted and unlinked
/// while that loop runs has its CMD_UNLINK on the wire before its CMD_SUBMIT. Answering 0
/// ("already completed") there made vhci give the URB back and then tear the device down at
/// its RET_SUBMIT (`cannot find a urb of seqnum N`; the usbtest case-24 hang). The URB must
/// be cancelled instead: one RET_UNLINK(-ECONNRESET), no RET_SUBMIT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlink_that_overtakes_its_submit_cancels_it() {
    let _s = EXCLUSIVE.read().await;
    let fx = start(ServerOptions::default()).await;
    let mut dev = Peer::import(fx.addr, "1-1").await;
    dev.configure(GZ).await;
    const PAIRS: usize = 100;
    let mut out = BytesMut::new();
    let mut cancelled_urbs = Vec::new();
    let mut kept = Vec::new();
    for i in 0..PAIRS {
        // Numbered as vhci numbers them: the URB first, its unlink after; sent the other way.
        let urb = dev.seqnum();
        let direction = if i % 2 == 0 {
            Direction::In
        } else {
            Direction::Out
        };
        let mut c = cmd(GZ, direction, 1, 4096);
        c.seqnum = urb;
        if direction == Direction::Out {
            c.data = Bytes::from(vec![0u8; 4096]);
        }
        dev.unlink_into(GZ, urb, &mut out);
        dev.submit_as_into(&c, &mut out);
        cancelled_urbs.push(urb);
        // An ordinary URB between the pairs: completes as usual.
        kept.push(dev.submit_into(cmd(GZ, Direction::In, 1, 512), &mut out));
    }
    dev.send(&out).await;
    // The codec fails on any answer vhci would reject (a RET_SUBMIT after the RET_UNLINK
    // that gave its URB back, or a RET_UNLINK(0) for a URB with no RET_SUBMIT yet).
    let answers = dev.exchange(&[], 2 * PAIRS).await;
    assert!(
        cancelled_urbs
            .iter()
            .chain(&kept)
            .all(|u| answers.get(u) == Some(&1))
    );
    assert_eq!(dev.codec.outstanding(), 0);
    // The device still streams.
    dev.submit(cmd(GZ, Direction::In, 1, 4096)).await;
    assert!(matches!(dev.recv_some().await, Reply::Submit(r) if r.status == 0));
    fault(PAIRS as u64);
    drop(dev);
    fx.shutdown().await;
    report(
        "an_unlink_that_overtakes_its_submit_cancels_it",
        PAIRS as u64,
    );
}

/// The unlink/complete race at the writer, made deterministic by a host that stops reading
/// while a 16 MiB reply is being written (its header read proves the writer is in it):
/// - a URB completed meanwhile sits in the writer, unwritten: its unlink cancels it
///   (RET_UNLINK -ECONNRESET) and its RET_SUBMIT is never written;
/// - the unlink of the URB whose reply is being written is answered 0, after that reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlinks_race_replies_in_the_writer() {
    let _s = EXCLUSIVE.write().await;
    let fx = start(ServerOptions::default()).await;
    let mut dev = Peer::import_with(fx.addr, "1-1", Some(16 * 1024)).await;
    dev.configure(GZ).await;
    const BIG: u32 = 16 * 1024 * 1024;
    let big = dev.submit(cmd(GZ, Direction::In, 1, BIG)).await;
    // Read until the big reply's header is in: the writer is now writing it, and blocks.
    while dev.rx.len() < 48 {
        tokio::time::timeout(STEP, dev.s.read_buf(&mut dev.rx))
            .await
            .expect("the big reply starts in time")
            .expect("read");
    }
    assert_eq!(&dev.rx[0..4], &3u32.to_be_bytes(), "RET_SUBMIT");
    assert_eq!(&dev.rx[4..8], &big.to_be_bytes(), "of the big URB");
    let mut out = BytesMut::new();
    let small = dev.submit_into(cmd(GZ, Direction::In, 1, 512), &mut out);
    let unlink_small = dev.unlink_into(GZ, small, &mut out);
    let unlink_big = dev.unlink_into(GZ, big, &mut out);
    dev.send(&out).await;
    // Let the server take all three (its reader is not blocked, only its writer).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut order = Vec::new();
    while order.len() < 3 {
        match dev.recv_some().await {
            Reply::Submit(r) => order.push(("RET_SUBMIT", r.seqnum, r.status)),
            Reply::Unlink { ret, .. } => order.push(("RET_UNLINK", ret.seqnum, ret.status)),
        }
    }
    assert_eq!(
        order,
        [
            ("RET_SUBMIT", big, 0),
            ("RET_UNLINK", unlink_small, -errno::ECONNRESET),
            ("RET_UNLINK", unlink_big, 0),
        ]
    );
    assert_eq!(dev.codec.outstanding(), 0);
    dev.submit(cmd(GZ, Direction::In, 1, 4096)).await;
    assert!(
        matches!(dev.recv_some().await, Reply::Submit(r) if r.status == 0 && r.seqnum != small)
    );
    fault(2);
    drop(dev);
    fx.shutdown().await;
    report("unlinks_race_replies_in_the_writer", 2);
}

/// A host that stops reading replies for a while with 5000 URBs queued is pushed back (the
/// server stops reading it), not dropped: when it reads again, every URB is answered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_pauses_reading_gets_every_answer() {
    let _s = EXCLUSIVE.write().await;
    let fx = start(ServerOptions::default()).await;
    let mut dev = Peer::import_with(fx.addr, "1-1", Some(64 * 1024)).await;
    dev.configure(GZ).await;
    const URBS: usize = 5000;
    let mut out = BytesMut::new();
    let mut urbs = Vec::new();
    for _ in 0..URBS {
        urbs.push(dev.submit_into(cmd(GZ, Direction::In, 1, 512), &mut out));
    }
    // Write as much as the server takes without reading anything, then pause 3 s.
    let bytes = out.freeze();
    let mut pos = 0;
    while pos < bytes.len() {
        match tokio::time::timeout(Duration::from_millis(500), dev.s.write(&bytes[pos..])).await {
            Ok(Ok(n)) => pos += n,
            Ok(Err(e)) => panic!("the server closed the connection: {e}"),
            Err(_) => break,
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let taken = pos;
    let answers = dev.exchange(&bytes[pos..], URBS).await;
    assert!(urbs.iter().all(|u| answers.get(u) == Some(&1)));
    assert_eq!(dev.codec.outstanding(), 0);
    eprintln!(
        "paused reader: {URBS} x 512 B IN URBs, {taken} of {} command bytes taken before the \
         pause, every URB answered once afterwards",
        bytes.len()
    );
    fault(URBS as u64);
    drop(dev);
    fx.gz_works().await;
    fx.shutdown().await;
    report("a_host_that_pauses_reading_gets_every_answer", URBS as u64);
}

/// A CMD_UNLINK must not wait behind a stream of completions: a host blocks in
/// `usb_kill_urb` until it is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlinks_are_answered_while_other_urbs_stream() {
    let _s = EXCLUSIVE.read().await;
    let fx = start(ServerOptions::default()).await;
    let mut dev = Peer::import(fx.addr, "1-1").await;
    dev.configure(GZ).await;
    const DEPTH: usize = 64;
    const LEN: u32 = 64 * 1024;
    let mut out = BytesMut::new();
    for _ in 0..DEPTH {
        dev.submit_into(cmd(GZ, Direction::In, 1, LEN), &mut out);
    }
    dev.send(&out).await;
    let t = Instant::now();
    let mut unlink_sent: Option<(Instant, u32)> = None;
    let mut answered: Option<Duration> = None;
    let mut streamed = 0u64;
    // Keep DEPTH URBs in flight for up to 3 s; unlink the newest after 100 ms.
    while t.elapsed() < Duration::from_secs(3) && answered.is_none() {
        match dev.recv_some().await {
            Reply::Submit(r) => {
                assert_eq!(r.status, 0);
                streamed += 1;
                let mut out = BytesMut::new();
                let last = dev.submit_into(cmd(GZ, Direction::In, 1, LEN), &mut out);
                if unlink_sent.is_none() && t.elapsed() > Duration::from_millis(100) {
                    dev.unlink_into(GZ, last, &mut out);
                    unlink_sent = Some((Instant::now(), last));
                }
                dev.send(&out).await;
            }
            Reply::Unlink { .. } => {
                answered = unlink_sent.map(|(at, _)| at.elapsed());
            }
        }
    }
    let latency = answered.expect("the RET_UNLINK came while the stream was running");
    eprintln!(
        "RET_UNLINK after {latency:?} with {DEPTH} x 64 KiB IN URBs streaming ({streamed} completed)"
    );
    // Drain the rest.
    while dev.codec.outstanding() > 0 {
        dev.recv_some().await;
    }
    fault(1);
    drop(dev);
    fx.shutdown().await;
    assert!(
        latency < Duration::from_secs(2),
        "unlink answered after {latency:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_seqnums_and_devids() {
    let _s = EXCLUSIVE.read().await;
    let fx = start(ServerOptions::default()).await;
    let bystander = Bystander::idle(&fx).await;
    let mut dev = Peer::import(fx.addr, "1-1").await;
    dev.configure(GZ).await;
    let status = get_status().to_bytes();
    let mut faults = 0u64;
    // Seqnums 0 and u32::MAX are just numbers: echoed.
    for seqnum in [0, u32::MAX, 0x8000_0000] {
        let mut out = BytesMut::new();
        let c = CmdSubmit {
            seqnum,
            ..control(GZ, status, Direction::In, 2)
        };
        dev.submit_as_into(&c, &mut out);
        dev.send(&out).await;
        match dev.recv_some().await {
            Reply::Submit(r) => assert_eq!((r.seqnum, r.status), (seqnum, 0)),
            other => panic!("{other:?}"),
        }
    }
    // URBs for another device id (a stranger, the other export, 0): answered, not
    // forwarded, with a "no device" status; the connection goes on.
    for devid in [0xdead_beef, IDLE_DEV, 0] {
        let seqnum = dev.submit(control(devid, status, Direction::In, 2)).await;
        match dev.recv_some().await {
            Reply::Submit(r) => {
                assert_eq!(r.seqnum, seqnum);
                assert!(
                    r.status == -errno::ESHUTDOWN || r.status == -errno::ENODEV,
                    "status {}",
                    r.status
                );
                assert_eq!(r.actual_length, 0);
            }
            other => panic!("{other:?}"),
        }
        faults += 1;
    }
    // Unlinks of seqnums never used, and of the unlink's own seqnum: 0, nothing cancelled.
    for target in [777_777, u32::MAX - 1] {
        let mut out = BytesMut::new();
        dev.unlink_into(GZ, target, &mut out);
        dev.send(&out).await;
        assert!(matches!(dev.recv_some().await, Reply::Unlink { ret, .. } if ret.status == 0));
        faults += 1;
    }
    let own = dev.next_seqnum;
    let mut out = BytesMut::new();
    assert_eq!(dev.unlink_into(GZ, own, &mut out), own);
    dev.send(&out).await;
    assert!(matches!(dev.recv_some().await, Reply::Unlink { ret, .. } if ret.status == 0));
    faults += 1;
    // Still streaming.
    dev.submit(cmd(GZ, Direction::In, 1, 4096)).await;
    assert!(matches!(dev.recv_some().await, Reply::Submit(r) if r.status == 0));
    drop(dev);
    let done = bystander.finish().await;

    // A CMD_SUBMIT that reuses the seqnum of a pending URB is a protocol violation: that
    // connection (only) is closed.
    let bystander = Bystander::gadget_zero(&fx).await;
    let mut idle = Peer::import(fx.addr, "1-2").await;
    idle.configure(IDLE_DEV).await;
    let pending = idle.submit(cmd(IDLE_DEV, Direction::In, 1, 512)).await;
    let mut again = cmd(IDLE_DEV, Direction::In, 1, 512);
    again.seqnum = pending;
    let mut out = BytesMut::new();
    again.encode(&mut out).expect("encodes");
    idle.send(&out).await;
    closed_by_server(idle.s, STEP).await;
    faults += 1;
    fx.idle_works().await;
    let streamed = bystander.finish().await;
    fault(faults);
    eprintln!("bystanders: {done} GET_STATUS, {streamed} bulk IN");
    fx.shutdown().await;
    report("invalid_seqnums_and_devids", faults);
}

/// Each of these closes the connection that sent it, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_lengths_and_malformed_messages_close_only_that_connection() {
    let _s = EXCLUSIVE.read().await;
    let fx = start(ServerOptions::default()).await;
    let bystander = Bystander::idle(&fx).await;
    // [command, seqnum, devid, direction, ep, flags, tbl, start_frame, packets, interval]
    let urb_phase: Vec<(&str, Vec<u8>)> = vec![
        (
            "OUT buffer past max_transfer_buffer",
            raw_header([1, 1, GZ, 0, 1, 0, 16 * 1024 * 1024 + 1, 0, 0, 0]),
        ),
        (
            "IN buffer past max_transfer_buffer",
            raw_header([1, 1, GZ, 1, 1, 0x200, 0x7fff_ffff, 0, 0, 0]),
        ),
        (
            "negative transfer_buffer_length",
            raw_header([1, 1, GZ, 1, 1, 0x200, 0x8000_0000, 0, 0, 0]),
        ),
        (
            "number_of_packets past max_iso_packets",
            raw_header([1, 1, GZ, 0, 1, 0, 0, 0, 1025, 0]),
        ),
        (
            "number_of_packets i32::MAX",
            raw_header([1, 1, GZ, 1, 1, 0, 0, 0, 0x7fff_ffff, 0]),
        ),
        (
            "endpoint 16",
            raw_header([1, 1, GZ, 1, 16, 0x200, 8, 0, 0, 0]),
        ),
        (
            "endpoint u32::MAX",
            raw_header([1, 1, GZ, 1, u32::MAX, 0x200, 8, 0, 0, 0]),
        ),
        ("direction 2", raw_header([1, 1, GZ, 2, 1, 0, 8, 0, 0, 0])),
        (
            "unknown command",
            raw_header([0xdead, 1, GZ, 0, 0, 0, 0, 0, 0, 0]),
        ),
        (
            "RET_SUBMIT from the host",
            raw_header([3, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
        ),
        (
            "RET_UNLINK from the host",
            raw_header([4, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
        ),
        ("an op request after import", op_import("1-1")),
    ];
    let mut faults = 0u64;
    for (what, bytes) in &urb_phase {
        let mut s = raw_import(fx.addr, "1-1").await;
        s.write_all(bytes).await.expect("write");
        let took = closed_by_server(s, STEP).await;
        assert!(
            took < Duration::from_secs(5),
            "{what}: closed after {took:?}"
        );
        faults += 1;
    }
    let mut busid_no_nul = vec![0x01, 0x11, 0x80, 0x03, 0, 0, 0, 0];
    busid_no_nul.extend([b'A'; 32]);
    let mut busid_not_utf8 = op_import("1-1");
    busid_not_utf8[8] = 0xff;
    let op_phase: Vec<(&str, Vec<u8>)> = vec![
        ("version 0x0106", vec![0x01, 0x06, 0x80, 0x05, 0, 0, 0, 0]),
        ("unknown op code", vec![0x01, 0x11, 0x12, 0x34, 0, 0, 0, 0]),
        (
            "a reply code as request",
            vec![0x01, 0x11, 0x00, 0x05, 0, 0, 0, 0],
        ),
        ("busid without NUL", busid_no_nul),
        ("busid not UTF-8", busid_not_utf8),
        ("HTTP", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        (
            "a URB before import",
            raw_header([1, 1, GZ, 1, 0, 0, 8, 0, 0, 0]),
        ),
    ];
    for (what, bytes) in &op_phase {
        let mut s = TcpStream::connect(fx.addr).await.expect("connect");
        s.write_all(bytes).await.expect("write");
        let took = closed_by_server(s, STEP).await;
        assert!(
            took < Duration::from_secs(5),
            "{what}: closed after {took:?}"
        );
        faults += 1;
    }
    fx.gz_works().await;
    let done = bystander.finish().await;
    fault(faults);
    eprintln!("bystander: {done} GET_STATUS during {faults} malformed messages");
    fx.shutdown().await;
    report(
        "oversized_lengths_and_malformed_messages_close_only_that_connection",
        faults,
    );
}

fn iso(devid: u32, direction: Direction, ep: u8, lengths: &[u32]) -> CmdSubmit {
    let total: u32 = lengths.iter().sum();
    let mut c = cmd(devid, direction, ep, total);
    c.number_of_packets = lengths.len() as i32;
    c.transfer_flags = TransferFlags(c.transfer_flags.0 | TransferFlags::ISO_ASAP.0);
    let mut offset = 0;
    c.iso = lengths
        .iter()
        .map(|&length| {
            let d = IsoPacketDescriptor {
                offset,
                length,
                actual_length: 0,
                status: 0,
            };
            offset += length;
            d
        })
        .collect();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iso_descriptors_that_disagree_with_the_data() {
    let _s = EXCLUSIVE.read().await;
    let fx = start(ServerOptions::default()).await;
    let bystander = Bystander::idle(&fx).await;
    let mut faults = 0u64;
    // Descriptor lengths that add up to more than the buffer, or reach past it: refused by
    // the decoder, the connection closed.
    let mut too_long = iso(GZ, Direction::Out, 1, &[64, 64, 64, 64]);
    too_long.iso[3].length = 100;
    let mut past_end = iso(GZ, Direction::Out, 1, &[64, 64, 64, 64]);
    past_end.iso[2].offset = 250;
    let mut in_past_end = iso(GZ, Direction::In, 1, &[64, 64]);
    in_past_end.iso[1].offset = u32::MAX - 10;
    for bad in [too_long, past_end, in_past_end] {
        let mut s = raw_import(fx.addr, "1-1").await;
        let mut out = BytesMut::new();
        bad.encode(&mut out).expect("encodes");
        s.write_all(&out).await.expect("write");
        closed_by_server(s, STEP).await;
        faults += 1;
    }
    // Consistent iso URBs on a bulk endpoint: answered (not supported), one descriptor per
    // packet, and the connection goes on. Windows' -1 and other negative counts mean "not
    // isochronous".
    let mut dev = Peer::import(fx.addr, "1-1").await;
    dev.configure(GZ).await;
    for c in [
        iso(GZ, Direction::Out, 1, &[64, 64, 64]),
        iso(GZ, Direction::In, 1, &[512, 512]),
    ] {
        let packets = c.iso.len();
        dev.submit(c).await;
        match dev.recv_some().await {
            Reply::Submit(r) => {
                assert!(r.status < 0, "iso on a bulk endpoint: {}", r.status);
                assert_eq!(r.iso.len(), packets);
                assert_eq!(r.actual_length, 0);
            }
            other => panic!("{other:?}"),
        }
        faults += 1;
    }
    for packets in [-1, -5, i32::MIN] {
        let mut c = cmd(GZ, Direction::In, 1, 4096);
        c.number_of_packets = packets;
        dev.submit(c).await;
        match dev.recv_some().await {
            Reply::Submit(r) => {
                assert_eq!((r.status, r.actual_length), (0, 4096));
                assert!(r.iso.is_empty());
            }
            other => panic!("{other:?}"),
        }
        faults += 1;
    }
    drop(dev);
    fx.gz_works().await;
    let done = bystander.finish().await;
    fault(faults);
    eprintln!("bystander: {done} GET_STATUS");
    fx.shutdown().await;
    report("iso_descriptors_that_disagree_with_the_data", faults);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_drops_half_messages_but_not_idle_hosts() {
    let _s = EXCLUSIVE.read().await;
    const IDLE_TIMEOUT: Duration = Duration::from_millis(400);
    let fx = start(ServerOptions {
        idle_timeout: IDLE_TIMEOUT,
        ..ServerOptions::default()
    })
    .await;
    let mut faults = 0u64;
    let within = |took: Duration, what: &str| {
        assert!(
            took >= IDLE_TIMEOUT - Duration::from_millis(50) && took < Duration::from_secs(10),
            "{what}: closed after {took:?} (idle_timeout {IDLE_TIMEOUT:?})"
        );
        eprintln!("[idle] {what}: closed after {took:?}");
    };
    // Op phase: silence, and half a header.
    let s = TcpStream::connect(fx.addr).await.expect("connect");
    within(closed_by_server(s, STEP).await, "silent new connection");
    let mut s = TcpStream::connect(fx.addr).await.expect("connect");
    s.write_all(&[0x01, 0x11, 0x80, 0x03]).await.expect("write");
    within(closed_by_server(s, STEP).await, "half an op header");
    // URB phase: half a header; a header and part of its OUT data; an iso URB whose
    // descriptors never all come.
    let mut s = raw_import(fx.addr, "1-1").await;
    s.write_all(&raw_header([1, 1, GZ, 1, 1, 0x200, 512, 0, 0, 0])[..24])
        .await
        .expect("write");
    within(closed_by_server(s, STEP).await, "half a URB header");
    let mut peer = Peer::import(fx.addr, "1-1").await;
    let mut out = BytesMut::new();
    peer.submit_into(cmd(GZ, Direction::Out, 1, 4096), &mut out);
    peer.send(&out[..48 + 1000]).await;
    within(closed_by_server(peer.s, STEP).await, "OUT data cut short");
    let mut peer = Peer::import(fx.addr, "1-1").await;
    let mut out = BytesMut::new();
    peer.submit_into(iso(GZ, Direction::Out, 1, &[8; 8]), &mut out);
    peer.send(&out[..48 + 64 + 2 * 16]).await;
    within(
        closed_by_server(peer.s, STEP).await,
        "2 of 8 iso descriptors",
    );
    faults += 5;

    // A host idle between messages, with a URB pending, for several timeouts: kept.
    let mut idle = Peer::import(fx.addr, "1-2").await;
    idle.configure(IDLE_DEV).await;
    let pending = idle.submit(cmd(IDLE_DEV, Direction::In, 1, 512)).await;
    tokio::time::sleep(IDLE_TIMEOUT * 4).await;
    idle.submit(control(IDLE_DEV, get_status().to_bytes(), Direction::In, 2))
        .await;
    assert!(matches!(idle.recv_some().await, Reply::Submit(r) if r.status == 0));
    // A message that arrives in pieces within the timeout: fine.
    let mut dev = Peer::import(fx.addr, "1-1").await;
    dev.configure(GZ).await;
    let mut out = BytesMut::new();
    dev.submit_into(cmd(GZ, Direction::Out, 1, 4096), &mut out);
    for piece in out.chunks(1500) {
        dev.send(piece).await;
        tokio::time::sleep(IDLE_TIMEOUT / 4).await;
    }
    assert!(
        matches!(dev.recv_some().await, Reply::Submit(r) if r.status == 0 && r.actual_length == 4096)
    );
    // The pending URB is still there to unlink.
    let mut out = BytesMut::new();
    idle.unlink_into(IDLE_DEV, pending, &mut out);
    idle.send(&out).await;
    assert!(matches!(
        idle.recv_some().await,
        Reply::Unlink {
            cancelled: true,
            ..
        }
    ));
    fault(faults);
    drop((idle, dev));
    fx.shutdown().await;
    report(
        "idle_timeout_drops_half_messages_but_not_idle_hosts",
        faults,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_connections() {
    let _x = EXCLUSIVE.write().await;
    let fx = start(ServerOptions::default()).await;
    let bystander = Bystander::gadget_zero(&fx).await;
    let t = Instant::now();
    // 100 hosts list the devices at once.
    let lists: Vec<_> = (0..100)
        .map(|_| tokio::spawn(client::list_devices(fx.addr)))
        .collect();
    for l in lists {
        let devices = tokio::time::timeout(STEP, l)
            .await
            .expect("list in time")
            .expect("join")
            .expect("list");
        assert_eq!(devices.len(), 2);
    }
    let listed = t.elapsed();
    // 100 hosts try to import the device the bystander holds: all told "busy".
    let imports: Vec<_> = (0..100)
        .map(|_| tokio::spawn(client::import(fx.addr, "1-1")))
        .collect();
    for i in imports {
        let r = tokio::time::timeout(STEP, i)
            .await
            .expect("in time")
            .expect("join");
        assert!(
            matches!(r, Err(client::ClientError::DeviceBusy { .. })),
            "{r:?}"
        );
    }
    // 100 peers hold half a header each, while the server keeps serving the rest.
    let mut holders = Vec::new();
    for _ in 0..100 {
        let mut s = TcpStream::connect(fx.addr).await.expect("connect");
        s.write_all(&[0x01, 0x11]).await.expect("write");
        holders.push(s);
    }
    let devices = client::list_devices(fx.addr)
        .await
        .expect("list with 100 idle peers");
    assert_eq!(devices.len(), 2);
    fx.idle_works().await;
    drop(holders);
    let streamed = bystander.finish().await;
    eprintln!(
        "100 concurrent devlists in {listed:?}, 100 concurrent busy imports, 100 idle peers; \
         the bystander streamed {streamed} x 4 KiB meanwhile (total {:?})",
        t.elapsed()
    );
    fault(300);
    fx.shutdown().await;
    report("a_hundred_concurrent_connections", 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refuses_extras_and_recovers() {
    let _s = EXCLUSIVE.read().await;
    let fx = start(ServerOptions {
        max_connections: 8,
        ..ServerOptions::default()
    })
    .await;
    // Eight silent peers take every slot (each proven accepted: a later one is refused).
    let mut holders = Vec::new();
    for _ in 0..8 {
        holders.push(TcpStream::connect(fx.addr).await.expect("connect"));
    }
    for _ in 0..5 {
        let s = TcpStream::connect(fx.addr).await.expect("connect");
        let took = closed_by_server(s, STEP).await;
        assert!(took < Duration::from_secs(5));
    }
    // One slot frees: a host gets served again.
    drop(holders.pop());
    let deadline = Instant::now() + STEP;
    let devices = loop {
        match client::list_devices(fx.addr).await {
            Ok(d) => break d,
            Err(e) => {
                assert!(Instant::now() < deadline, "never served again: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(devices.len(), 2);
    drop(holders);
    fault(13);
    fx.shutdown().await;
    report("max_connections_refuses_extras_and_recovers", 13);
}

/// Floods that a well-behaved server absorbs at a bounded cost: thousands of connections
/// that send garbage or half a header and go, and a host that pipelines a hundred thousand
/// requests and unlinks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_connections_and_requests_keep_memory_bounded() {
    let _x = EXCLUSIVE.write().await;
    let fx = start(ServerOptions::default()).await;
    let before = rss_kib();
    let sampler = RssSampler::start();
    let t = Instant::now();
    // 2000 connections, 100 at a time: half a header, garbage, or an import dropped at once.
    let mut conns = 0u64;
    for round in 0..20 {
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let addr = fx.addr;
                tokio::spawn(async move {
                    let mut s = TcpStream::connect(addr).await.expect("connect");
                    let bytes: Vec<u8> = match (round + i) % 3 {
                        0 => vec![0x01, 0x11, 0x80],
                        1 => vec![0xa5; 1000],
                        _ => op_import("1-2"),
                    };
                    let _ = s.write_all(&bytes).await;
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("join");
            conns += 1;
        }
    }
    let after_conns = sampler.peak();
    let conn_time = t.elapsed();
    // 100 000 GET_STATUS control URBs with 256 in flight, and 20 000 unlinks of nothing.
    let mut dev = Peer::import(fx.addr, "1-2").await;
    dev.configure(IDLE_DEV).await;
    let t = Instant::now();
    const REQUESTS: usize = 100_000;
    const WINDOW: usize = 256;
    let (mut sent, mut answered) = (0usize, 0usize);
    let status = get_status().to_bytes();
    while answered < REQUESTS {
        let mut out = BytesMut::new();
        while sent < REQUESTS && sent - answered < WINDOW {
            dev.submit_into(control(IDLE_DEV, status, Direction::In, 2), &mut out);
            sent += 1;
            if sent % 5 == 0 {
                dev.unlink_into(IDLE_DEV, 5_000_000 + sent as u32, &mut out);
            }
        }
        if !out.is_empty() {
            dev.send(&out).await;
        }
        if let Reply::Submit(r) = dev.recv_some().await {
            assert_eq!(r.status, 0);
            answered += 1;
        }
    }
    let request_time = t.elapsed();
    while dev.codec.outstanding() > 0 || dev.codec.is_outstanding(5_000_000 + sent as u32) {
        dev.recv_some().await;
    }
    drop(dev);
    let peak = sampler.peak();
    drop(sampler);
    let growth_mib = peak.saturating_sub(before) / 1024;
    let faults = conns + REQUESTS as u64 + REQUESTS as u64 / 5;
    fault(faults);
    eprintln!(
        "[rss] flood: {conns} bad connections in {conn_time:?} (VmRSS peak {} MiB), then \
         {REQUESTS} control URBs + {} unlinks in {request_time:?} ({:.0} URBs/s); VmRSS before \
         {} MiB, peak {} MiB (growth {growth_mib} MiB)",
        after_conns / 1024,
        REQUESTS / 5,
        REQUESTS as f64 / request_time.as_secs_f64(),
        before / 1024,
        peak / 1024
    );
    fx.gz_works().await;
    fx.idle_works().await;
    fx.shutdown().await;
    report(
        "floods_of_connections_and_requests_keep_memory_bounded",
        faults,
    );
    assert!(growth_mib < 256, "RSS grew by {growth_mib} MiB");
}

const SERVICE: &str = r#"
    [device]
    vendor_id = 0x1209
    product_id = 0x0003
    [[interfaces]]
    name = "svc"
    device_request_owner = true
    endpoints = [{ direction = "in", type = "bulk" }]
"#;

/// The device's service goes away while a host waits on a request it was answering: the
/// host gets that URB back (STALL) and is disconnected, even when the disconnect request
/// arrives in the same batch as the completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_that_goes_away_disconnects_the_host() {
    let _s = EXCLUSIVE.read().await;
    count_panics();
    for round in 0..20 {
        let controller =
            Controller::new(&DeviceConfig::from_toml(SERVICE).expect("toml")).expect("device");
        let iface = controller.open("svc").expect("open");
        iface.activate_bus().expect("activate");
        let mut builder = Server::builder();
        builder
            .export(controller.clone(), BusSpeed::High)
            .expect("export");
        let server = builder.build();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
        });
        let mut peer = Peer::import(addr, "1-1").await;
        // A vendor request the service receives and never answers.
        let seqnum = peer
            .submit(control(
                GZ,
                [0xc0, 0x42, 0, 0, 0, 0, 8, 0],
                Direction::In,
                8,
            ))
            .await;
        loop {
            let e = tokio::time::timeout(STEP, iface.next_event())
                .await
                .expect("event in time")
                .expect("event");
            if matches!(e, usbfn::BusEvent::SetupPacket(_)) {
                break;
            }
        }
        if round % 2 == 0 {
            iface.deactivate_bus().expect("deactivate");
        } else {
            drop(iface);
        }
        match peer.recv().await {
            Some(Reply::Submit(r)) => {
                assert_eq!(r.seqnum, seqnum);
                assert_eq!(r.status, -errno::EPIPE);
            }
            other => panic!("round {round}: {other:?}"),
        }
        assert!(
            peer.recv().await.is_none(),
            "round {round}: the host was not disconnected"
        );
        let _ = stop.send(());
        tokio::time::timeout(STEP, task)
            .await
            .expect("stops")
            .expect("join")
            .expect("serve");
    }
    assert_no_panics();
    fault(20);
    report("service_that_goes_away_disconnects_the_host", 20);
}
