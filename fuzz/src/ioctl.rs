//! `ioctl_dispatch`: raw `DeviceIoControl` calls from a hostile service into
//! [`usbfn::Interface::ioctl`] (what the daemon runs for every REQUEST frame), mixed with a
//! host that attaches, configures, moves data and goes away.
//!
//! A script of [`Step`]s is read with `arbitrary` (one tag byte per step). Each IOCTL is
//! polled once: if it is not done it is either kept (polled again after every step) or
//! dropped (CancelIoEx). Checks: no panic; a reply never carries more output than the
//! caller's buffer; when the host goes away and the services let go, every kept request
//! completes (except BUS_EVENT_NOTIFICATION, which waits for the next event by design).

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use usbfn::host::Host;
use usbfn::ioctl::{IoctlReply, IoctlRequest};
use usbfn::{BusSpeed, Controller, DeviceConfig, Interface};
use usbfn_abi::IoctlCode;
use usbfn_core::DeviceModel;
use usbfn_wire::SetupPacket;

use crate::core_ops::DEVICE_TOML;

/// Most steps one script runs.
pub const MAX_STEPS: usize = 128;

/// The codes a service may send (index into this table; past it, the raw `u32`).
const CODES: [IoctlCode; 15] = [
    IoctlCode::TRANSFER_IN,
    IoctlCode::TRANSFER_IN_APPEND_ZERO_PKT,
    IoctlCode::TRANSFER_OUT,
    IoctlCode::CONTROL_STATUS_HANDSHAKE_IN,
    IoctlCode::CONTROL_STATUS_HANDSHAKE_OUT,
    IoctlCode::GET_PIPE_STATE,
    IoctlCode::SET_PIPE_STATE,
    IoctlCode::GET_CLASS_INFO,
    IoctlCode::GET_CLASS_INFO_EX,
    IoctlCode::GET_INTERFACE_DESCRIPTOR_SET,
    IoctlCode::REGISTER_USB_STRING,
    IoctlCode::ACTIVATE_USB_BUS,
    IoctlCode::DEACTIVATE_USB_BUS,
    IoctlCode::BUS_EVENT_NOTIFICATION,
    IoctlCode(0x0022_C0FF),
];

/// One step of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A raw IOCTL from the service of interface `iface % 3`.
    Ioctl {
        /// Which interface's service.
        iface: u8,
        /// Index (mod 16) into the code table; 15 means `raw` is the code.
        code: u8,
        /// The raw code when `code` is past the table.
        raw: u32,
        /// The input buffer: a little-endian pipe id, then `input_len - 4` pattern bytes.
        pipe: u32,
        /// Bytes of input (0..=600).
        input_len: u16,
        /// Bytes carried in the output buffer (METHOD_IN_DIRECT data), 0..=4096.
        output_len: u16,
        /// `nOutBufferSize`.
        capacity: u16,
        /// Keep it if it does not complete at once (otherwise it is cancelled).
        keep: bool,
    },
    /// The host attaches (if it is not attached) at speed `n % 3`.
    Attach(u8),
    /// The host sends SET_CONFIGURATION(value).
    Configure(u8),
    /// A host URB: bulk/interrupt on `ep % 4`, IN or OUT, `len` bytes.
    Urb {
        /// Endpoint number.
        ep: u8,
        /// IN (true) or OUT.
        dir_in: bool,
        /// Buffer or data length (0..=4096).
        len: u16,
    },
    /// A host control request with these setup bytes.
    Control([u8; 8]),
    /// The host goes away.
    Detach,
}

impl<'a> Arbitrary<'a> for Step {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u8::arbitrary(u)? % 8 {
            0..=2 => Step::Ioctl {
                iface: u.arbitrary()?,
                code: u.arbitrary()?,
                raw: u.arbitrary()?,
                pipe: u.arbitrary()?,
                input_len: u16::arbitrary(u)? % 601,
                output_len: u16::arbitrary(u)? % 4097,
                capacity: u.arbitrary()?,
                keep: u.arbitrary()?,
            },
            3 => Step::Attach(u.arbitrary()?),
            4 => Step::Configure(u.arbitrary()?),
            5 => Step::Urb {
                ep: u.arbitrary()?,
                dir_in: u.arbitrary()?,
                len: u16::arbitrary(u)? % 4097,
            },
            6 => Step::Control(u.arbitrary()?),
            _ => Step::Detach,
        })
    }
}

/// Run a script (the fuzz target).
pub fn run(data: &[u8]) {
    runtime().block_on(play(decode(data)));
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime")
    })
}

fn model() -> DeviceModel {
    static MODEL: OnceLock<DeviceModel> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let config = DeviceConfig::from_toml(DEVICE_TOML).expect("the fuzz device parses");
            DeviceModel::build(&config).expect("the fuzz device is valid")
        })
        .clone()
}

type Pending<'a> = Pin<Box<dyn Future<Output = IoctlReply> + 'a>>;

struct Kept<'a> {
    code: IoctlCode,
    capacity: usize,
    future: Pending<'a>,
}

fn check(code: IoctlCode, capacity: usize, reply: &IoctlReply) {
    assert!(
        reply.output.len() <= capacity,
        "{code:?}: {} output bytes for a {capacity}-byte buffer",
        reply.output.len()
    );
}

/// Poll every kept request once; drop the finished ones.
fn poll_kept(kept: &mut Vec<Kept<'_>>) {
    let mut cx = Context::from_waker(Waker::noop());
    kept.retain_mut(|k| match k.future.as_mut().poll(&mut cx) {
        Poll::Ready(reply) => {
            check(k.code, k.capacity, &reply);
            false
        }
        Poll::Pending => true,
    });
}

async fn settle(kept: &mut Vec<Kept<'_>>) {
    for _ in 0..4 {
        tokio::task::yield_now().await;
        poll_kept(kept);
    }
}

async fn play(steps: Vec<Step>) {
    let Ok(controller) = Controller::from_model(model()) else {
        return;
    };
    let ifaces: Vec<Interface> = match controller.open_all() {
        Ok(i) => i,
        Err(_) => return,
    };
    for i in &ifaces {
        let _ = i.activate_bus();
    }
    let mut host: Option<Host> = None;
    let mut kept: Vec<Kept<'_>> = Vec::new();
    let mut cx = Context::from_waker(Waker::noop());
    for step in steps {
        match step {
            Step::Ioctl {
                iface,
                code,
                raw,
                pipe,
                input_len,
                output_len,
                capacity,
                keep,
            } => {
                let code = CODES
                    .get(usize::from(code))
                    .copied()
                    .unwrap_or(IoctlCode(raw));
                let mut input = pipe.to_le_bytes().to_vec();
                input.resize(usize::from(input_len), 0x11);
                let output = Bytes::from(vec![1u8; usize::from(output_len)]);
                let capacity = usize::from(capacity);
                let Some(iface) = ifaces.get(usize::from(iface) % ifaces.len()) else {
                    continue;
                };
                let request = IoctlRequest {
                    code,
                    input: Bytes::from(input),
                    output,
                    output_capacity: capacity,
                };
                // The future borrows the interface, which outlives it (`kept` is dropped
                // before `ifaces`).
                let mut future: Pending<'_> = Box::pin(iface.ioctl(request));
                match future.as_mut().poll(&mut cx) {
                    Poll::Ready(reply) => check(code, capacity, &reply),
                    Poll::Pending if keep => kept.push(Kept {
                        code,
                        capacity,
                        future,
                    }),
                    Poll::Pending => drop(future),
                }
            }
            Step::Attach(speed) => {
                if host.is_none() {
                    host = Host::connect(&controller, BusSpeed::ALL[usize::from(speed % 3)]).ok();
                }
            }
            Step::Configure(value) => {
                if let Some(h) = &host {
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_millis(1),
                        h.set_configuration(value),
                    )
                    .await;
                }
            }
            Step::Urb { ep, dir_in, len } => {
                if let Some(h) = &host {
                    let ep = ep % 4;
                    let len = usize::from(len);
                    let urb = if dir_in {
                        h.bulk_in(ep, len)
                    } else {
                        h.bulk_out(ep, Bytes::from(vec![2u8; len]))
                    };
                    // Fire and forget: the host's completion may come later or never.
                    drop(urb);
                }
            }
            Step::Control(setup) => {
                if let Some(h) = &host {
                    let setup = SetupPacket::from_bytes(setup);
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_millis(1),
                        h.control(setup, Bytes::from(vec![3u8; usize::from(setup.w_length)])),
                    )
                    .await;
                }
            }
            Step::Detach => host = None,
        }
        settle(&mut kept).await;
    }
    // The host goes away: every transfer ends; what is left waits for a bus event.
    drop(host);
    settle(&mut kept).await;
    kept.retain(|k| k.code != IoctlCode::BUS_EVENT_NOTIFICATION);
    let left: Vec<IoctlCode> = kept.iter().map(|k| k.code).collect();
    assert!(
        left.is_empty(),
        "requests still pending after the host went away: {left:?}"
    );
    drop(kept);
    drop(ifaces);
}

/// The bytes [`run`] reads back as `steps` (for seeds).
pub fn encode(steps: &[Step]) -> Vec<u8> {
    let mut out = Vec::new();
    for step in steps {
        match *step {
            Step::Ioctl {
                iface,
                code,
                raw,
                pipe,
                input_len,
                output_len,
                capacity,
                keep,
            } => {
                out.extend([0, iface, code]);
                out.extend(raw.to_le_bytes());
                out.extend(pipe.to_le_bytes());
                out.extend(input_len.to_le_bytes());
                out.extend(output_len.to_le_bytes());
                out.extend(capacity.to_le_bytes());
                out.push(u8::from(keep));
            }
            Step::Attach(speed) => out.extend([3, speed]),
            Step::Configure(value) => out.extend([4, value]),
            Step::Urb { ep, dir_in, len } => {
                out.extend([5, ep, u8::from(dir_in)]);
                out.extend(len.to_le_bytes());
            }
            Step::Control(setup) => {
                out.push(6);
                out.extend(setup);
            }
            Step::Detach => out.push(7),
        }
    }
    out
}

/// A step list decoded from `data` as [`run`] does.
pub fn decode(data: &[u8]) -> Vec<Step> {
    let mut u = Unstructured::new(data);
    let mut steps = Vec::new();
    while !u.is_empty() && steps.len() < MAX_STEPS {
        match Step::arbitrary(&mut u) {
            Ok(s) => steps.push(s),
            Err(_) => break,
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_round_trip_and_random_scripts_run() {
        for (name, bytes) in crate::seeds::ioctl_dispatch() {
            assert_eq!(encode(&decode(&bytes)), bytes, "{name}");
            run(&bytes);
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..300 {
            let data: Vec<u8> = (0..400)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x.to_le_bytes()[3]
                })
                .collect();
            run(&data);
        }
    }
}
