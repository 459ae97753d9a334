//! Service-side faults with the in-process host: services that never answer a setup packet,
//! use pipes they do not own, send garbage IOCTLs, flood requests or vanish mid-transfer.
//!
//! Invariants: no panic; the host never hangs (every URB completes once); the other
//! interface keeps working; every service request completes exactly once (a transfer future
//! resolves, a refused request fails at once, nothing is buffered without bound); memory
//! stays bounded (VmRSS printed with `eprintln!`).

#![allow(clippy::cast_possible_truncation)] // test sizes are small by construction

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use usbfn::host::Host;
use usbfn::ioctl::IoctlRequest;
use usbfn::{BusEvent, BusSpeed, CompletionStatus, Controller, DeviceConfig, Error, PipeId};
use usbfn_abi::{IoctlCode, NtStatus};
use usbfn_core::{MAX_QUEUED_CONTROL_URBS, MAX_TRANSFER_LENGTH, MAX_TRANSFERS_PER_PIPE};
use usbfn_wire::{Direction, Recipient, RequestType, SetupPacket};

/// Two interfaces: "a" owns device requests and a bulk pair; "b" has an interrupt IN pipe.
const CONFIG: &str = r#"
    [device]
    vendor_id = 0x1209
    product_id = 0x0004
    [control]
    setup_timeout_ms = 50
    [[interfaces]]
    name = "a"
    device_request_owner = true
    endpoints = [{ direction = "in", type = "bulk" }, { direction = "out", type = "bulk" }]
    [[interfaces]]
    name = "b"
    endpoints = [{ direction = "in", type = "interrupt", max_packet = 64 }]
"#;

const A_IN: PipeId = PipeId(1);
const A_OUT: PipeId = PipeId(2);
const B_IN: PipeId = PipeId(3);
const STEP: Duration = Duration::from_secs(20);

static FAULTS: AtomicU64 = AtomicU64::new(0);

/// Panics in any task (tokio catches those in spawned tasks): counted by a hook installed
/// with the first device and checked by [`report`] at the end of every test.
static PANICS: AtomicU64 = AtomicU64::new(0);

fn count_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::Relaxed);
            default(info);
        }));
    });
}

fn report(test: &str, faults: u64) {
    assert_eq!(
        PANICS.load(Ordering::Relaxed),
        0,
        "a task panicked (see above)"
    );
    let total = FAULTS.fetch_add(faults, Ordering::Relaxed) + faults;
    eprintln!("[faults] {test}: {faults} faults injected ({total} so far in this binary)");
}

struct Rig {
    _controller: Controller,
    a: usbfn::Interface,
    b: usbfn::Interface,
    host: Host,
}

async fn configured() -> Rig {
    count_panics();
    let controller =
        Controller::new(&DeviceConfig::from_toml(CONFIG).expect("toml")).expect("device");
    let a = controller.open("a").expect("open a");
    let b = controller.open("b").expect("open b");
    a.activate_bus().expect("activate a");
    b.activate_bus().expect("activate b");
    let host = Host::connect(&controller, BusSpeed::High).expect("connect");
    host.set_configuration(1).await.expect("configure");
    while a.try_next_event().is_some() {}
    while b.try_next_event().is_some() {}
    Rig {
        _controller: controller,
        a,
        b,
        host,
    }
}

fn vendor_in(request: u8, len: u16) -> SetupPacket {
    SetupPacket::new(
        Direction::In,
        RequestType::Vendor,
        Recipient::Device,
        request,
        0,
        0,
        len,
    )
}

/// Interface b still moves data: the "other interface" of every fault.
async fn b_works(rig: &Rig) {
    let urb = rig.host.bulk_in(2, 64);
    tokio::time::timeout(STEP, rig.b.transfer_in(B_IN, Bytes::from_static(b"b ok")))
        .await
        .expect("b's transfer in time")
        .expect("b's transfer");
    let c = tokio::time::timeout(STEP, urb)
        .await
        .expect("URB in time")
        .expect("URB");
    assert_eq!(&c.data[..], b"b ok");
}

/// VmRSS of this process in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_never_answers_setup_packets_cannot_hang_the_host() {
    let rig = configured().await;
    // Twenty requests nobody answers, each with a GET_STATUS queued behind it: every URB
    // completes once, the vendor ones STALLed by the 50 ms timeout, the standard ones after.
    let mut urbs = Vec::new();
    for i in 0..20u8 {
        urbs.push((true, rig.host.submit(control_urb(vendor_in(0x40 + i, 8)))));
        let status = SetupPacket::new(
            Direction::In,
            RequestType::Standard,
            Recipient::Device,
            0,
            0,
            0,
            2,
        );
        urbs.push((false, rig.host.submit(control_urb(status))));
    }
    // Meanwhile interface b moves data.
    b_works(&rig).await;
    let t = Instant::now();
    for (vendor, urb) in urbs {
        let c = tokio::time::timeout(STEP, urb)
            .await
            .expect("no URB hangs")
            .expect("completed");
        if vendor {
            assert_eq!(c.status, CompletionStatus::Stall);
        } else {
            assert_eq!(c.status, CompletionStatus::Success);
        }
    }
    eprintln!(
        "40 control URBs behind 20 unanswered setups done in {:?}",
        t.elapsed()
    );
    // The service wakes up and answers far too late: refused, nothing completes twice.
    let mut late = 0;
    while let Some(e) = rig.a.try_next_event() {
        if let BusEvent::SetupPacket(_) = e {
            late += 1;
            let r = rig
                .a
                .transfer_in(PipeId::CONTROL, Bytes::from_static(b"late"))
                .await;
            assert!(matches!(r, Err(Error::Refused(_))), "{r:?}");
            assert!(rig.a.control_status_handshake_in().is_err());
        }
    }
    assert_eq!(late, 20, "every setup packet reached the service");
    b_works(&rig).await;
    // Too many at once: past MAX_QUEUED_CONTROL_URBS the host is STALLed at once, and a
    // service that goes away STALLs everything it held.
    let flood: Vec<_> = (0..MAX_QUEUED_CONTROL_URBS + 50)
        .map(|_| rig.host.submit(control_urb(vendor_in(0x42, 4))))
        .collect();
    rig.a.deactivate_bus().expect("deactivate");
    let mut stalled = 0;
    for urb in flood {
        let c = tokio::time::timeout(STEP, urb)
            .await
            .expect("no URB hangs")
            .expect("completed");
        assert_ne!(c.status, CompletionStatus::Success);
        stalled += 1;
    }
    report(
        "a_service_that_never_answers_setup_packets_cannot_hang_the_host",
        20 + stalled,
    );
}

fn control_urb(setup: SetupPacket) -> usbfn_core::Urb {
    usbfn_core::Urb {
        id: usbfn_core::UrbId(0),
        endpoint: 0,
        direction: setup.direction(),
        setup: Some(setup),
        buffer_len: usize::from(setup.w_length),
        data: Bytes::new(),
        short_not_ok: false,
        zero_packet: false,
        iso: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_cannot_touch_pipes_they_do_not_own() {
    let rig = configured().await;
    let mut faults = 0u64;
    // b on a's pipes, a on b's, both on pipes that do not exist.
    let attempts = [
        (&rig.b, A_IN),
        (&rig.b, A_OUT),
        (&rig.a, B_IN),
        (&rig.a, PipeId(4)),
        (&rig.a, PipeId(u32::MAX)),
    ];
    for (iface, pipe) in attempts {
        let r = iface.transfer_in(pipe, Bytes::from_static(b"x")).await;
        assert!(matches!(r, Err(Error::Refused(_))), "{pipe:?}: {r:?}");
        let r = iface.transfer_out(pipe, 64).await;
        assert!(matches!(r, Err(Error::Refused(_))), "{pipe:?}: {r:?}");
        let e = iface.set_pipe_state(pipe, true).expect_err("not its pipe");
        assert_eq!(e.to_ntstatus(), NtStatus::STATUS_INVALID_PARAMETER);
        assert!(iface.get_pipe_state(pipe).is_err());
        faults += 4;
    }
    // The owners' pipes are untouched: not stalled, data flows.
    assert!(!rig.a.get_pipe_state(A_IN).expect("own pipe"));
    let urb = rig.host.bulk_in(1, 512);
    rig.a
        .transfer_in(A_IN, Bytes::from_static(b"a ok"))
        .await
        .expect("a's own pipe");
    assert_eq!(&urb.await.expect("URB").data[..], b"a ok");
    b_works(&rig).await;

    // The raw dispatcher with garbage: every IOCTL code with inputs that are empty, short,
    // long, or name foreign pipes. Each returns a status (none waits, none succeeds on
    // another interface's pipe).
    let codes = [
        IoctlCode::TRANSFER_IN,
        IoctlCode::TRANSFER_IN_APPEND_ZERO_PKT,
        IoctlCode::TRANSFER_OUT,
        IoctlCode::CONTROL_STATUS_HANDSHAKE_IN,
        IoctlCode::CONTROL_STATUS_HANDSHAKE_OUT,
        IoctlCode::GET_PIPE_STATE,
        IoctlCode::SET_PIPE_STATE,
        IoctlCode::GET_INTERFACE_DESCRIPTOR_SET,
        IoctlCode::REGISTER_USB_STRING,
        IoctlCode::GET_CLASS_INFO,
        IoctlCode::GET_CLASS_INFO_EX,
        IoctlCode(0),
        IoctlCode(u32::MAX),
    ];
    let inputs: Vec<Bytes> = vec![
        Bytes::new(),
        Bytes::from_static(&[1]),
        Bytes::copy_from_slice(&3u32.to_le_bytes()),
        Bytes::copy_from_slice(&u32::MAX.to_le_bytes()),
        Bytes::from(vec![0xff; 4096]),
    ];
    let mut statuses = std::collections::BTreeMap::<u32, u32>::new();
    for code in codes {
        for input in &inputs {
            for (output, capacity) in [(Bytes::new(), 0), (Bytes::from_static(&[7]), 3)] {
                let reply = tokio::time::timeout(
                    STEP,
                    rig.a.ioctl(IoctlRequest {
                        code,
                        input: input.clone(),
                        output,
                        output_capacity: capacity,
                    }),
                )
                .await
                .expect("every IOCTL completes");
                assert!(
                    reply.output.len() <= capacity,
                    "{code:?}: more output than room"
                );
                *statuses.entry(reply.status.0).or_default() += 1;
                faults += 1;
            }
        }
    }
    let listed: Vec<String> = statuses
        .iter()
        .map(|(status, n)| format!("{status:#010x} x {n}"))
        .collect();
    eprintln!("garbage IOCTLs answered: {}", listed.join(", "));
    assert!(!statuses.contains_key(&0), "a garbage IOCTL succeeded");
    // Nothing of that reached the host or b.
    assert!(!rig.b.get_pipe_state(B_IN).expect("b's pipe"));
    b_works(&rig).await;
    report("services_cannot_touch_pipes_they_do_not_own", faults);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_service_is_refused_not_buffered() {
    let rig = configured().await;
    let before = rss_kib();
    let t = Instant::now();
    // 100 000 TRANSFER_IN of 4 KiB that no host reads: the pipe queues
    // MAX_TRANSFERS_PER_PIPE, the rest are refused at once.
    const FLOOD: usize = 100_000;
    let data = Bytes::from(vec![0x5a; 4096]);
    let mut accepted = Vec::new();
    let mut refused = 0usize;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..FLOOD {
        let mut t = rig.a.transfer_in(A_IN, data.clone());
        // A refused request is ready at once; an accepted one stays pending.
        match std::pin::Pin::new(&mut t).poll(&mut cx) {
            std::task::Poll::Ready(Err(Error::Refused(e))) => {
                assert_eq!(e.to_ntstatus(), NtStatus::STATUS_INSUFFICIENT_RESOURCES);
                refused += 1;
            }
            std::task::Poll::Ready(other) => panic!("unexpected {other:?}"),
            std::task::Poll::Pending => accepted.push(t),
        }
    }
    let flood_time = t.elapsed();
    // Oversized requests: refused, never allocated.
    let r = rig.a.transfer_out(A_OUT, usize::MAX).await;
    assert!(matches!(r, Err(Error::Refused(_))), "{r:?}");
    let r = rig
        .a
        .transfer_in(A_IN, Bytes::from(vec![0u8; MAX_TRANSFER_LENGTH + 1]))
        .await;
    assert!(matches!(r, Err(Error::Refused(_))), "{r:?}");
    // Requests with nothing to act on, in a loop: each fails at once.
    for _ in 0..10_000 {
        assert!(rig.a.control_status_handshake_in().is_err());
        assert!(rig.a.set_pipe_state(PipeId::CONTROL, true).is_err());
    }
    let peak = rss_kib();
    // The host drains what was accepted: each completes exactly once, in order.
    let pending = accepted.len();
    let mut completed = 0usize;
    let host_reads: Vec<_> = (0..pending.min(64))
        .map(|_| rig.host.bulk_in(1, 4096))
        .collect();
    for urb in host_reads {
        assert_eq!(urb.await.expect("URB").data.len(), 4096);
    }
    // The rest are cancelled by dropping them; every future resolves once.
    let mut futures = accepted.into_iter();
    for t in futures.by_ref().take(64) {
        tokio::time::timeout(STEP, t)
            .await
            .expect("resolves")
            .expect("sent");
        completed += 1;
    }
    let cancelled = futures.count();
    b_works(&rig).await;
    let after = rss_kib();
    eprintln!(
        "[rss] service flood: {FLOOD} x 4 KiB TRANSFER_IN in {flood_time:?}: {pending} queued \
         (MAX_TRANSFERS_PER_PIPE {MAX_TRANSFERS_PER_PIPE}), {refused} refused; 20 000 \
         requests with nothing pending refused; VmRSS before {} MiB, peak {} MiB, after {} MiB",
        before / 1024,
        peak / 1024,
        after / 1024
    );
    assert!(pending <= MAX_TRANSFERS_PER_PIPE);
    assert_eq!(pending + refused, FLOOD);
    assert_eq!(completed + cancelled, pending);
    report(
        "a_flooding_service_is_refused_not_buffered",
        (FLOOD + 20_002) as u64,
    );
    assert!(
        peak.saturating_sub(before) < 256 * 1024,
        "RSS grew by {} MiB",
        peak.saturating_sub(before) / 1024
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_completes_once_when_the_host_or_the_service_goes_away() {
    let mut faults = 0u64;
    for round in 0..10 {
        let rig = configured().await;
        // Transfers in flight on both interfaces, host URBs in flight on both.
        let a_in: Vec<_> = (0..8)
            .map(|i| rig.a.transfer_in(A_IN, Bytes::from(vec![i; 100])))
            .collect();
        let a_out: Vec<_> = (0..8).map(|_| rig.a.transfer_out(A_OUT, 512)).collect();
        let b_in: Vec<_> = (0..4)
            .map(|_| rig.b.transfer_in(B_IN, Bytes::from_static(b"b")))
            .collect();
        let urbs: Vec<_> = (0..4)
            .map(|_| rig.host.bulk_in(1, 50))
            .chain((0..4).map(|_| rig.host.bulk_in(2, 64)))
            .collect();
        // Let some of it move.
        tokio::task::yield_now().await;
        let Rig { a, b, host, .. } = rig;
        match round % 3 {
            // The host unplugs.
            0 => drop(host),
            // Service a vanishes (its handle dropped), then the host unplugs.
            1 => {
                drop(a);
                drop(host);
                faults += 1;
                let results = resolve_all(a_in, a_out, b_in, urbs).await;
                faults += results;
                continue;
            }
            // Service b deactivates: the host is told to go away, and goes (a's transfers
            // wait for a host until then, as on a real bus).
            _ => {
                b.deactivate_bus().expect("deactivate");
                drop(host);
            }
        }
        faults += 1;
        faults += resolve_all(a_in, a_out, b_in, urbs).await;
        drop(a);
        drop(b);
    }
    report(
        "every_request_completes_once_when_the_host_or_the_service_goes_away",
        faults,
    );
}

/// Every transfer future and URB future resolves (whatever the status) in time.
async fn resolve_all(
    a_in: Vec<usbfn::Transfer>,
    a_out: Vec<usbfn::Transfer>,
    b_in: Vec<usbfn::Transfer>,
    urbs: Vec<usbfn::host::UrbFuture>,
) -> u64 {
    let mut n = 0;
    for t in a_in.into_iter().chain(a_out).chain(b_in) {
        let _ = tokio::time::timeout(STEP, t)
            .await
            .expect("transfer resolves");
        n += 1;
    }
    for u in urbs {
        // A URB whose host is gone fails (DeviceGone) or completes: either way it resolves.
        let _ = tokio::time::timeout(STEP, u).await.expect("URB resolves");
        n += 1;
    }
    n
}
