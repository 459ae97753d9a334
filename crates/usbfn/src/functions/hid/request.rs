//! HID 1.11 class requests (and the standard GET_DESCRIPTOR of the report descriptor),
//! decoded from a setup packet to the HID interface. Host input: typed errors, no panics.

use usbfn_wire::{Direction, Recipient, RequestType, SetupPacket, StandardRequest};

/// GET_REPORT.
pub const GET_REPORT: u8 = 0x01;
/// GET_IDLE.
pub const GET_IDLE: u8 = 0x02;
/// GET_PROTOCOL.
pub const GET_PROTOCOL: u8 = 0x03;
/// SET_REPORT.
pub const SET_REPORT: u8 = 0x09;
/// SET_IDLE.
pub const SET_IDLE: u8 = 0x0a;
/// SET_PROTOCOL.
pub const SET_PROTOCOL: u8 = 0x0b;
/// The largest report a SET_REPORT may carry.
pub const MAX_REPORT: usize = 1024;

/// A report's type (wValue high byte of GET/SET_REPORT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportType {
    /// Input (1).
    Input,
    /// Output (2).
    Output,
    /// Feature (3).
    Feature,
}

/// A request to the HID interface, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HidRequest {
    /// GET_DESCRIPTOR(report, 0x22).
    GetReportDescriptor {
        /// wLength.
        len: u16,
    },
    /// GET_REPORT.
    GetReport {
        /// Report type.
        kind: ReportType,
        /// Report ID (0: the device uses none).
        id: u8,
        /// wLength.
        len: u16,
    },
    /// SET_REPORT: a data stage of `len` bytes follows.
    SetReport {
        /// Report type.
        kind: ReportType,
        /// Report ID.
        id: u8,
        /// wLength.
        len: u16,
    },
    /// GET_IDLE (1 byte back).
    GetIdle {
        /// Report ID.
        id: u8,
    },
    /// SET_IDLE: `duration` × 4 ms, 0 = only on change.
    SetIdle {
        /// Report ID (0: all reports).
        id: u8,
        /// wValue high byte.
        duration: u8,
    },
    /// GET_PROTOCOL (1 byte back: 0 boot, 1 report).
    GetProtocol,
    /// SET_PROTOCOL.
    SetProtocol {
        /// True for the boot protocol (wValue 0).
        boot: bool,
    },
}

/// Why a setup packet is not a request this function answers (it is STALLed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HidError {
    /// Neither a class request nor GET_DESCRIPTOR(report) to an interface.
    #[error("not a HID request to an interface (bmRequestType {0:#04x}, bRequest {1:#04x})")]
    NotHid(u8, u8),
    /// Addressed to another interface.
    #[error("request to interface {got:#06x}, the HID interface is {expected}")]
    WrongInterface {
        /// The HID interface's number.
        expected: u8,
        /// wIndex.
        got: u16,
    },
    /// An unsupported request or descriptor type.
    #[error("unsupported HID request {0:#04x} (wValue {1:#06x})")]
    Unsupported(u8, u16),
    /// The direction bit does not match the request.
    #[error("HID request {0:#04x} with the wrong direction")]
    Direction(u8),
    /// wLength is not what the request carries.
    #[error("HID request {request:#04x} with wLength {got}: {allowed}")]
    Length {
        /// bRequest.
        request: u8,
        /// wLength.
        got: u16,
        /// What is allowed (names the limit).
        allowed: &'static str,
    },
}

/// Decode `setup` as a request to the HID interface numbered `interface`.
pub fn decode(setup: &SetupPacket, interface: u8) -> Result<HidRequest, HidError> {
    let (request, value) = (setup.b_request, setup.w_value);
    let not_hid = HidError::NotHid(setup.bm_request_type, request);
    if setup.recipient() != Recipient::Interface {
        return Err(not_hid);
    }
    if setup.w_index != u16::from(interface) {
        return Err(HidError::WrongInterface {
            expected: interface,
            got: setup.w_index,
        });
    }
    let [id, high] = value.to_le_bytes();
    let dir = setup.direction();
    let want = |d: Direction| {
        if dir == d {
            Ok(())
        } else {
            Err(HidError::Direction(request))
        }
    };
    let len_is = |want: u16, allowed| {
        if setup.w_length == want {
            Ok(())
        } else {
            Err(HidError::Length {
                request,
                got: setup.w_length,
                allowed,
            })
        }
    };
    match setup.request_type() {
        RequestType::Standard if request == StandardRequest::GET_DESCRIPTOR.0 => {
            want(Direction::In)?;
            if high != 0x22 || id != 0 {
                return Err(HidError::Unsupported(request, value));
            }
            Ok(HidRequest::GetReportDescriptor {
                len: setup.w_length,
            })
        }
        RequestType::Class => {
            let kind = match high {
                1 => Some(ReportType::Input),
                2 => Some(ReportType::Output),
                3 => Some(ReportType::Feature),
                _ => None,
            };
            match request {
                GET_REPORT | SET_REPORT => {
                    let kind = kind.ok_or(HidError::Unsupported(request, value))?;
                    if setup.w_length == 0 || usize::from(setup.w_length) > MAX_REPORT {
                        return Err(HidError::Length {
                            request,
                            got: setup.w_length,
                            allowed: "1..=1024 (MAX_REPORT)",
                        });
                    }
                    let len = setup.w_length;
                    if request == GET_REPORT {
                        want(Direction::In)?;
                        Ok(HidRequest::GetReport { kind, id, len })
                    } else {
                        want(Direction::Out)?;
                        Ok(HidRequest::SetReport { kind, id, len })
                    }
                }
                GET_IDLE => {
                    want(Direction::In)?;
                    len_is(1, "1")?;
                    Ok(HidRequest::GetIdle { id })
                }
                GET_PROTOCOL => {
                    want(Direction::In)?;
                    len_is(1, "1")?;
                    Ok(HidRequest::GetProtocol)
                }
                SET_IDLE => {
                    want(Direction::Out)?;
                    len_is(0, "0")?;
                    Ok(HidRequest::SetIdle { id, duration: high })
                }
                SET_PROTOCOL => {
                    want(Direction::Out)?;
                    len_is(0, "0")?;
                    match value {
                        0 | 1 => Ok(HidRequest::SetProtocol { boot: value == 0 }),
                        _ => Err(HidError::Unsupported(request, value)),
                    }
                }
                _ => Err(HidError::Unsupported(request, value)),
            }
        }
        _ => Err(not_hid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(b: [u8; 8], interface: u8) -> Result<HidRequest, HidError> {
        decode(&SetupPacket::from_bytes(b), interface)
    }

    #[test]
    fn decodes_what_usbhid_sends() {
        assert_eq!(
            d([0x81, 0x06, 0, 0x22, 1, 0, 63, 0], 1),
            Ok(HidRequest::GetReportDescriptor { len: 63 })
        );
        // usbhid's probe: SET_IDLE(0, 0), then the keyboard's LEDs as SET_REPORT(output).
        assert_eq!(
            d([0x21, 0x0a, 0, 0, 0, 0, 0, 0], 0),
            Ok(HidRequest::SetIdle { id: 0, duration: 0 })
        );
        assert_eq!(
            d([0x21, 0x09, 0, 2, 0, 0, 1, 0], 0),
            Ok(HidRequest::SetReport {
                kind: ReportType::Output,
                id: 0,
                len: 1
            })
        );
        assert_eq!(
            d([0xa1, 0x01, 0, 1, 0, 0, 8, 0], 0),
            Ok(HidRequest::GetReport {
                kind: ReportType::Input,
                id: 0,
                len: 8
            })
        );
        assert_eq!(
            d([0x21, 0x0a, 0, 125, 0, 0, 0, 0], 0),
            Ok(HidRequest::SetIdle {
                id: 0,
                duration: 125
            })
        );
        assert_eq!(
            d([0xa1, 0x02, 0, 0, 0, 0, 1, 0], 0),
            Ok(HidRequest::GetIdle { id: 0 })
        );
        assert_eq!(
            d([0xa1, 0x03, 0, 0, 0, 0, 1, 0], 0),
            Ok(HidRequest::GetProtocol)
        );
        assert_eq!(
            d([0x21, 0x0b, 0, 0, 0, 0, 0, 0], 0),
            Ok(HidRequest::SetProtocol { boot: true })
        );
    }

    #[test]
    fn refuses_malformed_requests() {
        assert!(matches!(
            d([0x81, 0x06, 0, 0x23, 0, 0, 9, 0], 0),
            Err(HidError::Unsupported(..))
        ));
        assert!(matches!(
            d([0x21, 0x09, 0, 2, 1, 0, 1, 0], 0),
            Err(HidError::WrongInterface { .. })
        ));
        assert!(matches!(
            d([0x21, 0x09, 0, 2, 0, 0, 0, 0x10], 0),
            Err(HidError::Length { .. })
        ));
        assert!(matches!(
            d([0x21, 0x09, 0, 4, 0, 0, 1, 0], 0),
            Err(HidError::Unsupported(..))
        ));
        assert!(matches!(
            d([0xa1, 0x0a, 0, 0, 0, 0, 0, 0], 0),
            Err(HidError::Direction(0x0a))
        ));
        assert!(matches!(
            d([0x21, 0x0b, 2, 0, 0, 0, 0, 0], 0),
            Err(HidError::Unsupported(..))
        ));
        assert!(matches!(
            d([0x41, 0x01, 0, 1, 0, 0, 8, 0], 0),
            Err(HidError::NotHid(..))
        ));
        assert!(matches!(
            d([0x22, 0x01, 0, 1, 0, 0, 8, 0], 0),
            Err(HidError::NotHid(..))
        ));
    }
}
