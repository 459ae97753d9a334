//! [`usbfn::ServiceApi`] for [`RemoteInterface`]: each method builds its IOCTL's buffers,
//! and each completion is turned back into the in-process API's values and errors, so a
//! service cannot tell the two apart.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use usbfn::{BusEvent, BusSpeed, ClassInfo, CompletionStatus, Error, PipeId, ServiceApi};
use usbfn_abi::{
    ClassInformationPacket, ClassInterface, InterfaceInfoHeader, IoctlCode, Notification, NtStatus,
    UsbString, UsbStringText,
};
use usbfn_core::{ClassInterfaceInfo, ServiceError, TransferCompletion, TransferId};
use usbfn_wire::EndpointDescriptor;

use super::{PendingIoctl, RemoteInterface};
use crate::frame::Completion;

/// First guess at the size of an interface's descriptor set; the daemon says when it is more.
const DESCRIPTOR_SET_GUESS: u32 = 1024;

/// A transfer in flight over the socket. Await it; drop it to cancel (`CancelIoEx`).
#[derive(Debug)]
#[must_use = "a transfer is cancelled when its future is dropped"]
pub struct RemoteTransfer {
    pending: PendingIoctl,
    out: bool,
}

impl Future for RemoteTransfer {
    /// IN: the bytes sent (in [`TransferCompletion::bytes_transferred`]); OUT: the data.
    type Output = Result<TransferCompletion, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let out = self.out;
        let c = std::task::ready!(Pin::new(&mut self.pending).poll(cx))?;
        Poll::Ready(transfer_completion(c, out))
    }
}

/// A transfer's completion as the in-process [`usbfn::Transfer`] reports it.
fn transfer_completion(c: Completion, out: bool) -> Result<TransferCompletion, Error> {
    let status = completion_status(c.status).ok_or_else(|| status_error(c.status))?;
    if status != CompletionStatus::Success {
        return Err(Error::Transfer(status));
    }
    let bytes_transferred = if out {
        c.output.len()
    } else {
        crate::usize_from(c.information)
    };
    Ok(TransferCompletion {
        id: TransferId(c.id),
        status,
        bytes_transferred,
        data: if out { c.output } else { Bytes::new() },
    })
}

/// The transfer outcome an NTSTATUS stands for (the inverse of
/// [`CompletionStatus::to_ntstatus`]), or `None` when it is a refusal of the request itself.
pub fn completion_status(status: NtStatus) -> Option<CompletionStatus> {
    Some(match status {
        NtStatus::STATUS_SUCCESS => CompletionStatus::Success,
        NtStatus::STATUS_DEVICE_DATA_ERROR => CompletionStatus::Stall,
        NtStatus::STATUS_DATA_OVERRUN => CompletionStatus::Babble,
        NtStatus::STATUS_CANCELLED => CompletionStatus::Cancelled,
        NtStatus::STATUS_NOT_SUPPORTED => CompletionStatus::NotSupported,
        _ => return None,
    })
}

/// The in-process error a failure status stands for.
pub fn status_error(status: NtStatus) -> Error {
    let said = |what: &str| format!("{what} (the daemon answered {status})");
    match status {
        NtStatus::STATUS_DEVICE_NOT_CONNECTED => Error::DeviceGone,
        NtStatus::STATUS_CANCELLED => Error::Transfer(CompletionStatus::Cancelled),
        NtStatus::STATUS_DEVICE_DATA_ERROR => Error::Transfer(CompletionStatus::Stall),
        NtStatus::STATUS_DATA_OVERRUN => Error::Transfer(CompletionStatus::Babble),
        NtStatus::STATUS_INVALID_DEVICE_STATE => Error::Refused(ServiceError::InvalidDeviceState(
            said("invalid device state"),
        )),
        NtStatus::STATUS_INSUFFICIENT_RESOURCES => Error::Refused(ServiceError::LimitExceeded {
            what: "daemon resources for this connection",
            limit: crate::MAX_OUTSTANDING_REQUESTS,
        }),
        NtStatus::STATUS_NOT_SUPPORTED | NtStatus::STATUS_INVALID_DEVICE_REQUEST => Error::Refused(
            ServiceError::NotSupported("the request, by the usbfn daemon"),
        ),
        _ => Error::Refused(ServiceError::InvalidParameter(said("request refused"))),
    }
}

fn check(c: Completion) -> Result<Completion, Error> {
    if c.status == NtStatus::STATUS_SUCCESS {
        Ok(c)
    } else {
        Err(status_error(c.status))
    }
}

fn pipe_input(pipe: PipeId) -> Bytes {
    Bytes::copy_from_slice(&pipe.0.to_le_bytes())
}

/// A buffer size for [`RemoteInterface::submit`]. fits: every caller passes a fixed ABI size,
/// a descriptor-set size (header plus a u16), a capacity checked against MAX_DATA_LEN, or IN
/// data that `submit` refuses beyond MAX_DATA_LEN before the size is sent.
fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn bad_reply(what: &str) -> Error {
    Error::Refused(ServiceError::InvalidDeviceState(format!(
        "the daemon's answer is not a valid {what}"
    )))
}

/// `USBFN_CLASS_INFORMATION_PACKET` → the core's [`ClassInfo`].
pub fn class_info_from_packet(p: &ClassInformationPacket) -> Result<ClassInfo, Error> {
    let speed = |c: &ClassInterface| -> Result<ClassInterfaceInfo, Error> {
        let pipes = c
            .pipes
            .as_slice()
            .iter()
            .map(|pi| {
                EndpointDescriptor::parse(&pi.endpoint_descriptor.encode())
                    .map(|d| (d, PipeId(pi.pipe_id.0)))
                    .map_err(|_| bad_reply("endpoint descriptor"))
            })
            .collect::<Result<_, _>>()?;
        Ok(ClassInterfaceInfo {
            interface_number: c.interface_number,
            pipes,
        })
    };
    Ok(ClassInfo {
        per_speed: [
            speed(&p.full_speed)?,
            speed(&p.high_speed)?,
            speed(&p.super_speed)?,
        ],
        name: p.interface_name.as_str().to_owned(),
        guid: p.interface_guid.map(|g| g.to_string()),
    })
}

/// `USBFN_NOTIFICATION` → [`BusEvent`]; `None` for events the service API does not carry
/// (the deprecated PortType and BusTearDown, unknown values).
pub fn bus_event_from_notification(n: &Notification) -> Result<Option<BusEvent>, Error> {
    BusEvent::from_notification(n).map_err(|_| bad_reply("bus speed"))
}

impl RemoteInterface {
    async fn call(&self, code: IoctlCode, input: Bytes) -> Result<(), Error> {
        check(self.submit(code, input, Bytes::new(), 0).await?).map(drop)
    }

    fn transfer(&self, code: IoctlCode, pipe: PipeId, data: Bytes) -> RemoteTransfer {
        let len = len32(data.len());
        RemoteTransfer {
            pending: self.submit(code, pipe_input(pipe), data, len),
            out: false,
        }
    }
}

impl ServiceApi for RemoteInterface {
    type Transfer = RemoteTransfer;

    async fn class_info(&self) -> Result<ClassInfo, Error> {
        let size = len32(ClassInformationPacket::SIZE);
        let c = check(
            self.submit(IoctlCode::GET_CLASS_INFO, Bytes::new(), Bytes::new(), size)
                .await?,
        )?;
        let packet = ClassInformationPacket::decode(&c.output)
            .map_err(|_| bad_reply("USBFN_CLASS_INFORMATION_PACKET"))?;
        class_info_from_packet(&packet)
    }

    async fn activate_bus(&self) -> Result<(), Error> {
        self.call(IoctlCode::ACTIVATE_USB_BUS, Bytes::new()).await
    }

    async fn deactivate_bus(&self) -> Result<(), Error> {
        self.call(IoctlCode::DEACTIVATE_USB_BUS, Bytes::new()).await
    }

    async fn next_event(&self) -> Result<BusEvent, Error> {
        loop {
            let size = len32(Notification::SIZE);
            let c = check(
                self.submit(
                    IoctlCode::BUS_EVENT_NOTIFICATION,
                    Bytes::new(),
                    Bytes::new(),
                    size,
                )
                .await?,
            )?;
            let n = Notification::decode(&c.output).map_err(|_| bad_reply("USBFN_NOTIFICATION"))?;
            match bus_event_from_notification(&n)? {
                Some(event) => return Ok(event),
                None => tracing::debug!(event = %n.event, "bus event not carried by the API"),
            }
        }
    }

    fn transfer_in(&self, pipe: PipeId, data: Bytes) -> RemoteTransfer {
        self.transfer(IoctlCode::TRANSFER_IN, pipe, data)
    }

    fn transfer_in_append_zero(&self, pipe: PipeId, data: Bytes) -> RemoteTransfer {
        self.transfer(IoctlCode::TRANSFER_IN_APPEND_ZERO_PKT, pipe, data)
    }

    fn transfer_out(&self, pipe: PipeId, capacity: usize) -> RemoteTransfer {
        let pending = if capacity > crate::MAX_DATA_LEN {
            self.submit(
                IoctlCode::TRANSFER_OUT,
                pipe_input(pipe),
                Bytes::new(),
                u32::MAX,
            )
        } else {
            self.submit(
                IoctlCode::TRANSFER_OUT,
                pipe_input(pipe),
                Bytes::new(),
                len32(capacity),
            )
        };
        RemoteTransfer { pending, out: true }
    }

    async fn control_status_handshake_in(&self) -> Result<(), Error> {
        self.call(
            IoctlCode::CONTROL_STATUS_HANDSHAKE_IN,
            pipe_input(PipeId::CONTROL),
        )
        .await
    }

    async fn control_status_handshake_out(&self) -> Result<(), Error> {
        self.call(
            IoctlCode::CONTROL_STATUS_HANDSHAKE_OUT,
            pipe_input(PipeId::CONTROL),
        )
        .await
    }

    async fn get_pipe_state(&self, pipe: PipeId) -> Result<bool, Error> {
        let c = check(
            self.submit(IoctlCode::GET_PIPE_STATE, pipe_input(pipe), Bytes::new(), 1)
                .await?,
        )?;
        match c.output.first() {
            Some(b) => Ok(*b != 0),
            None => Err(bad_reply("pipe state")),
        }
    }

    async fn set_pipe_state(&self, pipe: PipeId, stall: bool) -> Result<(), Error> {
        let state = Bytes::copy_from_slice(&[u8::from(stall)]);
        check(
            self.submit(IoctlCode::SET_PIPE_STATE, pipe_input(pipe), state, 1)
                .await?,
        )
        .map(drop)
    }

    async fn interface_descriptor_set(
        &self,
        interface_number: u8,
        speed: BusSpeed,
    ) -> Result<Vec<u8>, Error> {
        let header = InterfaceInfoHeader {
            interface_number,
            speed: speed.to_abi(),
            size: 0,
        };
        let input = Bytes::copy_from_slice(&header.encode());
        let mut size = DESCRIPTOR_SET_GUESS;
        for _ in 0..2 {
            let c = self
                .submit(
                    IoctlCode::GET_INTERFACE_DESCRIPTOR_SET,
                    input.clone(),
                    Bytes::new(),
                    size,
                )
                .await?;
            let got = InterfaceInfoHeader::decode(&c.output)
                .map_err(|_| bad_reply("USBFN_INTERFACE_INFO"))?;
            let needed = InterfaceInfoHeader::HEADER_LEN + usize::from(got.size);
            if c.status == NtStatus::STATUS_BUFFER_TOO_SMALL {
                size = len32(needed);
                continue;
            }
            let c = check(c)?;
            return c
                .output
                .get(InterfaceInfoHeader::HEADER_LEN..needed)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| bad_reply("USBFN_INTERFACE_INFO"));
        }
        Err(bad_reply("USBFN_INTERFACE_INFO size"))
    }

    async fn register_usb_string(&self, index: u8, text: &str) -> Result<(), Error> {
        let string = UsbStringText::new(text).map_err(|e| {
            Error::Refused(ServiceError::InvalidParameter(format!("USB string: {e}")))
        })?;
        let s = UsbString {
            string_index: index,
            string,
        };
        self.call(
            IoctlCode::REGISTER_USB_STRING,
            Bytes::copy_from_slice(&s.encode()),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_back_to_the_in_process_errors() {
        for s in [
            CompletionStatus::Success,
            CompletionStatus::Stall,
            CompletionStatus::Babble,
            CompletionStatus::Cancelled,
            CompletionStatus::NotSupported,
        ] {
            assert_eq!(completion_status(s.to_ntstatus()), Some(s));
        }
        assert!(matches!(
            status_error(NtStatus::STATUS_DEVICE_NOT_CONNECTED),
            Error::DeviceGone
        ));
        assert!(matches!(
            status_error(NtStatus::STATUS_INVALID_PARAMETER),
            Error::Refused(ServiceError::InvalidParameter(_))
        ));
        assert!(matches!(
            status_error(NtStatus::STATUS_INVALID_DEVICE_STATE),
            Error::Refused(ServiceError::InvalidDeviceState(_))
        ));
        // Round trip through the in-process mapping.
        for e in [
            Error::DeviceGone,
            Error::Transfer(CompletionStatus::Cancelled),
            Error::Refused(ServiceError::InvalidParameter("x".into())),
            Error::Refused(ServiceError::InvalidDeviceState("x".into())),
        ] {
            assert_eq!(status_error(e.to_ntstatus()).to_ntstatus(), e.to_ntstatus());
        }
    }

    #[test]
    fn notifications_map_to_events() {
        let cases = [
            (BusEvent::Attach, Some(BusEvent::Attach)),
            (
                BusEvent::Reset(BusSpeed::Super),
                Some(BusEvent::Reset(BusSpeed::Super)),
            ),
            (BusEvent::Configured(1), Some(BusEvent::Configured(1))),
            (
                BusEvent::SetInterface {
                    interface: 1,
                    alternate: 2,
                },
                Some(BusEvent::SetInterface {
                    interface: 1,
                    alternate: 2,
                }),
            ),
        ];
        for (event, expected) in cases {
            let n = Notification::decode(&event.to_notification_bytes()).expect("decode");
            assert_eq!(bus_event_from_notification(&n).expect("map"), expected);
        }
        let port = Notification::event_only(usbfn_abi::UsbfnEvent::PORT_TYPE);
        assert_eq!(bus_event_from_notification(&port).expect("map"), None);
    }
}
