//! CDC-ACM (PSTN 1.2) class requests and notifications: the decoder a host's setup packet
//! goes through before the serial function acts on it, the line coding, and the
//! SERIAL_STATE notification.
//!
//! Everything here is input from the host: [`decode`] and [`LineCoding::parse`] return typed
//! errors (the function then STALLs the request) and never panic.

use usbfn_wire::{Direction, Recipient, RequestType, SetupPacket};

/// SET_LINE_CODING (host to device, 7 bytes).
pub const SET_LINE_CODING: u8 = 0x20;
/// GET_LINE_CODING (device to host, 7 bytes).
pub const GET_LINE_CODING: u8 = 0x21;
/// SET_CONTROL_LINE_STATE (wValue bit 0 DTR, bit 1 RTS, no data stage).
pub const SET_CONTROL_LINE_STATE: u8 = 0x22;
/// SEND_BREAK (wValue: duration in ms, 0xFFFF = until the next SEND_BREAK 0).
pub const SEND_BREAK: u8 = 0x23;
/// SERIAL_STATE notification code.
pub const SERIAL_STATE: u8 = 0x20;
/// Size of a line coding structure.
pub const LINE_CODING_LEN: usize = 7;
/// Size of a SERIAL_STATE notification (8-byte header + u16 bitmap).
pub const SERIAL_STATE_LEN: usize = 10;

/// SERIAL_STATE bit 0: receiver carrier (DCD).
pub const STATE_DCD: u16 = 1 << 0;
/// SERIAL_STATE bit 1: transmission carrier (DSR).
pub const STATE_DSR: u16 = 1 << 1;
/// SERIAL_STATE bit 2: break detected.
pub const STATE_BREAK: u16 = 1 << 2;

/// A CDC-ACM request to the communication interface, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcmRequest {
    /// SET_LINE_CODING: the 7-byte data stage follows.
    SetLineCoding,
    /// GET_LINE_CODING: answer with up to `len` bytes of the line coding.
    GetLineCoding {
        /// wLength.
        len: u16,
    },
    /// SET_CONTROL_LINE_STATE.
    SetControlLineState {
        /// Data terminal ready (wValue bit 0).
        dtr: bool,
        /// Request to send (wValue bit 1).
        rts: bool,
    },
    /// SEND_BREAK for `duration_ms` (0 ends a break, 0xFFFF lasts until then).
    SendBreak {
        /// wValue.
        duration_ms: u16,
    },
}

/// Why a setup packet is not a CDC-ACM request this function answers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CdcError {
    /// Not a class request to an interface.
    #[error("not a class request to an interface (bmRequestType {0:#04x})")]
    NotClassInterface(u8),
    /// Addressed to another interface.
    #[error("request to interface {got}, the communication interface is {expected}")]
    WrongInterface {
        /// The communication interface's number.
        expected: u8,
        /// wIndex's low byte.
        got: u8,
    },
    /// A request code this function does not implement.
    #[error("unsupported CDC request {0:#04x}")]
    Unsupported(u8),
    /// The direction bit does not match the request.
    #[error("CDC request {request:#04x} with the wrong direction")]
    Direction {
        /// bRequest.
        request: u8,
    },
    /// wLength is not what the request carries.
    #[error("CDC request {request:#04x} with wLength {got}, expected {expected}")]
    Length {
        /// bRequest.
        request: u8,
        /// What the request carries.
        expected: &'static str,
        /// wLength.
        got: u16,
    },
    /// A line coding that is not 7 bytes or has out-of-range fields.
    #[error("line coding: {0}")]
    LineCoding(&'static str),
}

/// Decode `setup` as a request to the communication interface numbered `interface`.
pub fn decode(setup: &SetupPacket, interface: u8) -> Result<AcmRequest, CdcError> {
    if setup.request_type() != RequestType::Class || setup.recipient() != Recipient::Interface {
        return Err(CdcError::NotClassInterface(setup.bm_request_type));
    }
    let got = setup.w_index.to_le_bytes()[0];
    if got != interface || setup.w_index > 0xff {
        return Err(CdcError::WrongInterface {
            expected: interface,
            got,
        });
    }
    let request = setup.b_request;
    let direction = setup.direction();
    let want = |dir: Direction| {
        if direction == dir {
            Ok(())
        } else {
            Err(CdcError::Direction { request })
        }
    };
    match request {
        SET_LINE_CODING => {
            want(Direction::Out)?;
            if usize::from(setup.w_length) != LINE_CODING_LEN {
                return Err(CdcError::Length {
                    request,
                    expected: "7",
                    got: setup.w_length,
                });
            }
            Ok(AcmRequest::SetLineCoding)
        }
        GET_LINE_CODING => {
            want(Direction::In)?;
            if setup.w_length == 0 {
                return Err(CdcError::Length {
                    request,
                    expected: "1..=65535",
                    got: 0,
                });
            }
            Ok(AcmRequest::GetLineCoding {
                len: setup.w_length,
            })
        }
        SET_CONTROL_LINE_STATE | SEND_BREAK => {
            want(Direction::Out)?;
            if setup.w_length != 0 {
                return Err(CdcError::Length {
                    request,
                    expected: "0",
                    got: setup.w_length,
                });
            }
            Ok(if request == SEND_BREAK {
                AcmRequest::SendBreak {
                    duration_ms: setup.w_value,
                }
            } else {
                AcmRequest::SetControlLineState {
                    dtr: setup.w_value & 1 != 0,
                    rts: setup.w_value & 2 != 0,
                }
            })
        }
        other => Err(CdcError::Unsupported(other)),
    }
}

/// Stop bits (`bCharFormat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopBits {
    /// 1 stop bit.
    One,
    /// 1.5 stop bits.
    OneAndHalf,
    /// 2 stop bits.
    Two,
}

/// Parity (`bParityType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parity {
    /// None.
    None,
    /// Odd.
    Odd,
    /// Even.
    Even,
    /// Mark.
    Mark,
    /// Space.
    Space,
}

/// The line coding (PSTN 1.2 table 17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineCoding {
    /// Data terminal rate in bits per second.
    #[doc(alias = "dwDTERate")]
    pub rate: u32,
    /// Stop bits.
    #[doc(alias = "bCharFormat")]
    pub stop_bits: StopBits,
    /// Parity.
    #[doc(alias = "bParityType")]
    pub parity: Parity,
    /// Data bits: 5, 6, 7, 8 or 16.
    #[doc(alias = "bDataBits")]
    pub data_bits: u8,
}

impl Default for LineCoding {
    /// 9600 8N1, as the kernel's f_acm starts.
    fn default() -> Self {
        LineCoding {
            rate: 9600,
            stop_bits: StopBits::One,
            parity: Parity::None,
            data_bits: 8,
        }
    }
}

impl LineCoding {
    /// Decode the 7 bytes of a SET_LINE_CODING data stage.
    pub fn parse(bytes: &[u8]) -> Result<Self, CdcError> {
        let [r0, r1, r2, r3, format, parity, data_bits] = <[u8; LINE_CODING_LEN]>::try_from(bytes)
            .map_err(|_| CdcError::LineCoding("not 7 bytes"))?;
        let stop_bits = match format {
            0 => StopBits::One,
            1 => StopBits::OneAndHalf,
            2 => StopBits::Two,
            _ => return Err(CdcError::LineCoding("bCharFormat is not 0, 1 or 2")),
        };
        let parity = match parity {
            0 => Parity::None,
            1 => Parity::Odd,
            2 => Parity::Even,
            3 => Parity::Mark,
            4 => Parity::Space,
            _ => return Err(CdcError::LineCoding("bParityType is not 0..=4")),
        };
        if !matches!(data_bits, 5..=8 | 16) {
            return Err(CdcError::LineCoding("bDataBits is not 5, 6, 7, 8 or 16"));
        }
        Ok(LineCoding {
            rate: u32::from_le_bytes([r0, r1, r2, r3]),
            stop_bits,
            parity,
            data_bits,
        })
    }

    /// The 7 wire bytes.
    pub fn to_bytes(&self) -> [u8; LINE_CODING_LEN] {
        let [r0, r1, r2, r3] = self.rate.to_le_bytes();
        let format = match self.stop_bits {
            StopBits::One => 0,
            StopBits::OneAndHalf => 1,
            StopBits::Two => 2,
        };
        let parity = match self.parity {
            Parity::None => 0,
            Parity::Odd => 1,
            Parity::Even => 2,
            Parity::Mark => 3,
            Parity::Space => 4,
        };
        [r0, r1, r2, r3, format, parity, self.data_bits]
    }
}

impl std::fmt::Display for LineCoding {
    /// `115200 8N1` style.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parity = match self.parity {
            Parity::None => 'N',
            Parity::Odd => 'O',
            Parity::Even => 'E',
            Parity::Mark => 'M',
            Parity::Space => 'S',
        };
        let stop = match self.stop_bits {
            StopBits::One => "1",
            StopBits::OneAndHalf => "1.5",
            StopBits::Two => "2",
        };
        write!(f, "{} {}{}{}", self.rate, self.data_bits, parity, stop)
    }
}

/// A SERIAL_STATE notification for the communication interface `interface`.
pub fn serial_state(interface: u8, bits: u16) -> [u8; SERIAL_STATE_LEN] {
    let [b0, b1] = bits.to_le_bytes();
    [0xa1, SERIAL_STATE, 0, 0, interface, 0, 2, 0, b0, b1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(bytes: [u8; 8]) -> SetupPacket {
        SetupPacket::from_bytes(bytes)
    }

    #[test]
    fn decodes_what_cdc_acm_sends() {
        // SET_CONTROL_LINE_STATE DTR|RTS to interface 2 (cdc-acm's acm_port_dtr_rts).
        assert_eq!(
            decode(&setup([0x21, 0x22, 3, 0, 2, 0, 0, 0]), 2),
            Ok(AcmRequest::SetControlLineState {
                dtr: true,
                rts: true
            })
        );
        assert_eq!(
            decode(&setup([0x21, 0x20, 0, 0, 0, 0, 7, 0]), 0),
            Ok(AcmRequest::SetLineCoding)
        );
        assert_eq!(
            decode(&setup([0xa1, 0x21, 0, 0, 0, 0, 7, 0]), 0),
            Ok(AcmRequest::GetLineCoding { len: 7 })
        );
        assert_eq!(
            decode(&setup([0x21, 0x23, 0xff, 0xff, 0, 0, 0, 0]), 0),
            Ok(AcmRequest::SendBreak {
                duration_ms: 0xffff
            })
        );
    }

    #[test]
    fn refuses_malformed_requests() {
        assert_eq!(
            decode(&setup([0x21, 0x20, 0, 0, 0, 0, 6, 0]), 0),
            Err(CdcError::Length {
                request: 0x20,
                expected: "7",
                got: 6
            })
        );
        assert_eq!(
            decode(&setup([0xa1, 0x20, 0, 0, 0, 0, 7, 0]), 0),
            Err(CdcError::Direction { request: 0x20 })
        );
        assert_eq!(
            decode(&setup([0x21, 0x22, 0, 0, 1, 0, 0, 0]), 0),
            Err(CdcError::WrongInterface {
                expected: 0,
                got: 1
            })
        );
        assert_eq!(
            decode(&setup([0x21, 0x22, 0, 0, 0, 1, 0, 0]), 0),
            Err(CdcError::WrongInterface {
                expected: 0,
                got: 0
            })
        );
        assert_eq!(
            decode(&setup([0x41, 0x22, 0, 0, 0, 0, 0, 0]), 0),
            Err(CdcError::NotClassInterface(0x41))
        );
        assert_eq!(
            decode(&setup([0x21, 0x00, 0, 0, 0, 0, 0, 0]), 0),
            Err(CdcError::Unsupported(0))
        );
        assert_eq!(
            decode(&setup([0x21, 0x22, 0, 0, 0, 0, 1, 0]), 0),
            Err(CdcError::Length {
                request: 0x22,
                expected: "0",
                got: 1
            })
        );
    }

    #[test]
    fn line_coding_round_trips_and_checks_fields() {
        let bytes = [0x00, 0xc2, 0x01, 0x00, 0, 0, 8];
        let coding = LineCoding::parse(&bytes).expect("valid");
        assert_eq!(coding.rate, 115_200);
        assert_eq!(coding.to_string(), "115200 8N1");
        assert_eq!(coding.to_bytes(), bytes);
        assert_eq!(
            LineCoding::parse(&[0, 0, 0, 0, 2, 2, 7])
                .expect("valid")
                .to_string(),
            "0 7E2"
        );
        assert!(LineCoding::parse(&bytes[..6]).is_err());
        assert!(LineCoding::parse(&[0, 0, 0, 0, 3, 0, 8]).is_err());
        assert!(LineCoding::parse(&[0, 0, 0, 0, 0, 5, 8]).is_err());
        assert!(LineCoding::parse(&[0, 0, 0, 0, 0, 0, 9]).is_err());
        assert_eq!(
            LineCoding::default().to_bytes(),
            [0x80, 0x25, 0, 0, 0, 0, 8]
        );
    }

    #[test]
    fn serial_state_notification_bytes() {
        assert_eq!(
            serial_state(2, STATE_DCD | STATE_DSR),
            [0xa1, 0x20, 0, 0, 2, 0, 2, 0, 3, 0]
        );
    }
}
