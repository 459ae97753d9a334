//! The raw GenericUSBFn dispatcher: `DeviceIoControl(code, input, output)` over any opened
//! [`ServiceApi`] interface, with exactly the bytes the Windows driver takes and returns.
//! The daemon serves every backend through [`dispatch`].
//!
//! METHOD_IN_DIRECT requests (`TRANSFER_IN`, `TRANSFER_IN_APPEND_ZERO_PKT`, `SET_PIPE_STATE`)
//! carry data *to* the driver in their output buffer: [`IoctlRequest::output`] holds it.
//! Every other request fills at most [`IoctlRequest::output_capacity`] bytes.

use bytes::Bytes;
use usbfn_abi::{
    AbiError, ClassInformationPacket, ClassInformationPacketEx, ClassInterface, ClassInterfaceEx,
    EndpointDescriptorRaw, InterfaceGuid, InterfaceInfo, InterfaceInfoHeader, InterfaceName,
    IoctlCode, NtStatus, PipeInformation, PipeList, UsbString,
};
use usbfn_core::{BusSpeed, ClassInfo, PipeId};

use crate::error::Error;
use crate::service::ServiceApi;

/// One DeviceIoControl call.
#[derive(Clone, Debug)]
pub struct IoctlRequest {
    /// `IOCTL_GENERICUSBFN_*`.
    pub code: IoctlCode,
    /// The input buffer.
    pub input: Bytes,
    /// For METHOD_IN_DIRECT codes, the data in the output buffer; otherwise empty.
    pub output: Bytes,
    /// The output buffer's size.
    pub output_capacity: usize,
}

/// Its completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoctlReply {
    /// NTSTATUS.
    pub status: NtStatus,
    /// Bytes returned (`lpBytesReturned`); for IN transfers, bytes sent.
    pub information: usize,
    /// Output bytes (empty for METHOD_IN_DIRECT codes).
    pub output: Bytes,
}

impl IoctlReply {
    fn ok(output: impl Into<Bytes>) -> Self {
        let output = output.into();
        IoctlReply {
            status: NtStatus::STATUS_SUCCESS,
            information: output.len(),
            output,
        }
    }

    fn status(status: NtStatus) -> Self {
        IoctlReply {
            status,
            information: 0,
            output: Bytes::new(),
        }
    }
}

impl From<Error> for IoctlReply {
    fn from(e: Error) -> Self {
        IoctlReply::status(e.to_ntstatus())
    }
}

impl From<AbiError> for IoctlReply {
    fn from(_: AbiError) -> Self {
        IoctlReply::status(NtStatus::STATUS_INVALID_PARAMETER)
    }
}

/// Convert the core's class information to `USBFN_CLASS_INFORMATION_PACKET`.
pub fn class_information_packet(info: &ClassInfo) -> Result<ClassInformationPacket, AbiError> {
    let [full, high, sup] = &info.per_speed;
    Ok(ClassInformationPacket {
        full_speed: ClassInterface {
            interface_number: full.interface_number,
            pipes: pipe_list(full)?,
        },
        high_speed: ClassInterface {
            interface_number: high.interface_number,
            pipes: pipe_list(high)?,
        },
        super_speed: ClassInterface {
            interface_number: sup.interface_number,
            pipes: pipe_list(sup)?,
        },
        interface_name: InterfaceName::new(info.name.clone())?,
        interface_guid: info.guid.as_deref().map(InterfaceGuid::parse).transpose()?,
    })
}

/// Convert the core's class information to `USBFN_CLASS_INFORMATION_PACKET_EX`.
pub fn class_information_packet_ex(info: &ClassInfo) -> Result<ClassInformationPacketEx, AbiError> {
    let ex = |c: &usbfn_core::ClassInterfaceInfo| -> Result<ClassInterfaceEx, AbiError> {
        Ok(ClassInterfaceEx {
            base_interface_number: c.interface_number,
            interface_count: 1,
            pipes: pipe_list(c)?,
        })
    };
    let [full, high, sup] = &info.per_speed;
    Ok(ClassInformationPacketEx {
        full_speed: ex(full)?,
        high_speed: ex(high)?,
        super_speed: ex(sup)?,
        interface_name: InterfaceName::new(info.name.clone())?,
        interface_guid: info.guid.as_deref().map(InterfaceGuid::parse).transpose()?,
    })
}

fn pipe_list(c: &usbfn_core::ClassInterfaceInfo) -> Result<PipeList, AbiError> {
    let mut list = PipeList::new();
    for (desc, pipe) in &c.pipes {
        let bytes = desc.to_bytes();
        list.try_push(PipeInformation {
            endpoint_descriptor: EndpointDescriptorRaw::decode(&bytes)?,
            pipe_id: usbfn_abi::PipeId(pipe.0),
        })?;
    }
    Ok(list)
}

fn pipe_from(input: &[u8]) -> Result<PipeId, NtStatus> {
    let bytes: [u8; 4] = input
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(NtStatus::STATUS_INVALID_PARAMETER)?;
    Ok(PipeId(u32::from_le_bytes(bytes)))
}

/// Dispatch one raw IOCTL to `iface`, as `DeviceIoControl` would. Never fails: errors are
/// statuses. The same as [`start`] followed by [`Started::finish`].
pub async fn dispatch<S: ServiceApi>(iface: &S, request: IoctlRequest) -> IoctlReply {
    start(iface, request).finish(iface).await
}

/// A request [`start`] began: a transfer already queued on its pipe, or a request whose
/// whole work is done by [`Started::finish`].
#[derive(Debug)]
pub struct Started<S: ServiceApi> {
    step: Step<S>,
}

enum Step<S: ServiceApi> {
    In(S::Transfer),
    Out(S::Transfer),
    Failed(NtStatus),
    Later(IoctlRequest),
}

impl<S: ServiceApi> std::fmt::Debug for Step<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::In(_) => f.write_str("In(transfer)"),
            Step::Out(_) => f.write_str("Out(transfer)"),
            Step::Failed(s) => write!(f, "Failed({s})"),
            Step::Later(r) => write!(f, "Later({})", r.code),
        }
    }
}

/// Begin one raw IOCTL: a transfer (`TRANSFER_IN`, `TRANSFER_IN_APPEND_ZERO_PKT`,
/// `TRANSFER_OUT`) is submitted to its pipe right here, synchronously, so transfers on a
/// pipe queue in the order `start` is called for them, whatever order the tasks awaiting
/// them run in (the Windows driver queues a pipe's requests in the order they are issued;
/// a daemon that spawned one task per request would otherwise let a later OUT transfer take
/// an earlier packet). Everything else is done by [`Started::finish`].
pub fn start<S: ServiceApi>(iface: &S, r: IoctlRequest) -> Started<S> {
    let step = match r.code {
        IoctlCode::TRANSFER_IN | IoctlCode::TRANSFER_IN_APPEND_ZERO_PKT => {
            match pipe_from(&r.input) {
                Ok(pipe) if r.code == IoctlCode::TRANSFER_IN => {
                    Step::In(iface.transfer_in(pipe, r.output))
                }
                Ok(pipe) => Step::In(iface.transfer_in_append_zero(pipe, r.output)),
                Err(status) => Step::Failed(status),
            }
        }
        IoctlCode::TRANSFER_OUT => match pipe_from(&r.input) {
            Ok(pipe) => Step::Out(iface.transfer_out(pipe, r.output_capacity)),
            Err(status) => Step::Failed(status),
        },
        _ => Step::Later(r),
    };
    Started { step }
}

impl<S: ServiceApi> Started<S> {
    /// Wait for the transfer, or do the request; the reply.
    pub async fn finish(self, iface: &S) -> IoctlReply {
        let result = match self.step {
            Step::In(t) => Ok(match S::raw_completion(t).await {
                Ok(c) => IoctlReply {
                    status: c.status.to_ntstatus(),
                    information: c.bytes_transferred,
                    output: Bytes::new(),
                },
                Err(e) => e.into(),
            }),
            Step::Out(t) => Ok(match S::raw_completion(t).await {
                Ok(c) => IoctlReply {
                    status: c.status.to_ntstatus(),
                    information: c.data.len(),
                    output: c.data,
                },
                Err(e) => e.into(),
            }),
            Step::Failed(status) => Err(status),
            Step::Later(r) => dispatch_inner(iface, r).await,
        };
        result.unwrap_or_else(IoctlReply::status)
    }
}

async fn dispatch_inner<S: ServiceApi>(iface: &S, r: IoctlRequest) -> Result<IoctlReply, NtStatus> {
    let need_output = |n: usize| {
        if r.output_capacity < n {
            Err(NtStatus::STATUS_BUFFER_TOO_SMALL)
        } else {
            Ok(())
        }
    };
    let reply = match r.code {
        IoctlCode::CONTROL_STATUS_HANDSHAKE_IN | IoctlCode::CONTROL_STATUS_HANDSHAKE_OUT => {
            if pipe_from(&r.input)? != PipeId::CONTROL {
                return Err(NtStatus::STATUS_INVALID_PARAMETER);
            }
            let result = if r.code == IoctlCode::CONTROL_STATUS_HANDSHAKE_IN {
                iface.control_status_handshake_in().await
            } else {
                iface.control_status_handshake_out().await
            };
            result
                .map(|()| IoctlReply::ok(Bytes::new()))
                .unwrap_or_else(IoctlReply::from)
        }
        IoctlCode::GET_CLASS_INFO => {
            need_output(ClassInformationPacket::SIZE)?;
            let info = iface.class_info().await.map_err(|e| e.to_ntstatus())?;
            let packet = class_information_packet(&info)
                .map_err(|_| NtStatus::STATUS_INVALID_DEVICE_STATE)?;
            IoctlReply::ok(Bytes::copy_from_slice(&packet.encode()))
        }
        IoctlCode::GET_CLASS_INFO_EX => {
            need_output(ClassInformationPacketEx::SIZE)?;
            let info = iface.class_info().await.map_err(|e| e.to_ntstatus())?;
            let packet = class_information_packet_ex(&info)
                .map_err(|_| NtStatus::STATUS_INVALID_DEVICE_STATE)?;
            IoctlReply::ok(Bytes::copy_from_slice(&packet.encode()))
        }
        IoctlCode::GET_PIPE_STATE => {
            need_output(1)?;
            let stalled = iface
                .get_pipe_state(pipe_from(&r.input)?)
                .await
                .map_err(|e| e.to_ntstatus())?;
            IoctlReply::ok(Bytes::copy_from_slice(&[u8::from(stalled)]))
        }
        IoctlCode::SET_PIPE_STATE => {
            let pipe = pipe_from(&r.input)?;
            let stall = match r.output.first() {
                Some(0) => false,
                Some(1) => true,
                _ => return Err(NtStatus::STATUS_INVALID_PARAMETER),
            };
            iface
                .set_pipe_state(pipe, stall)
                .await
                .map(|()| IoctlReply::ok(Bytes::new()))
                .unwrap_or_else(IoctlReply::from)
        }
        IoctlCode::ACTIVATE_USB_BUS => iface
            .activate_bus()
            .await
            .map(|()| IoctlReply::ok(Bytes::new()))
            .unwrap_or_else(IoctlReply::from),
        IoctlCode::DEACTIVATE_USB_BUS => iface
            .deactivate_bus()
            .await
            .map(|()| IoctlReply::ok(Bytes::new()))
            .unwrap_or_else(IoctlReply::from),
        IoctlCode::BUS_EVENT_NOTIFICATION => {
            need_output(12)?;
            let event = iface.next_event().await.map_err(|e| e.to_ntstatus())?;
            IoctlReply::ok(Bytes::copy_from_slice(&event.to_notification_bytes()))
        }
        IoctlCode::GET_INTERFACE_DESCRIPTOR_SET => {
            let header = InterfaceInfoHeader::decode(&r.input)
                .map_err(|_| NtStatus::STATUS_INVALID_PARAMETER)?;
            let speed =
                BusSpeed::from_abi(header.speed).ok_or(NtStatus::STATUS_INVALID_PARAMETER)?;
            let set = iface
                .interface_descriptor_set(header.interface_number, speed)
                .await
                .map_err(|e| e.to_ntstatus())?;
            let info = InterfaceInfo::new(header.interface_number, header.speed, set)
                .map_err(|_| NtStatus::STATUS_INVALID_DEVICE_STATE)?;
            if r.output_capacity < info.encoded_len() {
                // Tell the caller how much it needs, as the Windows driver does.
                let mut too_small = info.header();
                // Fits: `InterfaceInfo::new` refused a set longer than u16.
                too_small.size = u16::try_from(info.descriptor_set().len()).unwrap_or(u16::MAX);
                let out = too_small.encode();
                let n = out.len().min(r.output_capacity);
                return Ok(IoctlReply {
                    status: NtStatus::STATUS_BUFFER_TOO_SMALL,
                    information: n,
                    output: Bytes::copy_from_slice(&out[..n]),
                });
            }
            IoctlReply::ok(info.to_vec())
        }
        IoctlCode::REGISTER_USB_STRING => {
            let s = UsbString::decode(&r.input).map_err(|_| NtStatus::STATUS_INVALID_PARAMETER)?;
            iface
                .register_usb_string(s.string_index, s.string.as_str())
                .await
                .map(|()| IoctlReply::ok(Bytes::new()))
                .unwrap_or_else(IoctlReply::from)
        }
        _ => return Err(NtStatus::STATUS_INVALID_DEVICE_REQUEST),
    };
    Ok(reply)
}
