//! Class-request decoders of the ready functions (CDC-ACM, HID) and the HID function's FIFO
//! command lines.
//!
//! Beyond "no panic": a line coding that parses re-encodes to the same 7 bytes; a decoded
//! request respects the limits its decoder names; `type` yields a press and a release per
//! character and `report` never exceeds the report length.

use usbfn::functions::acm::cdc::{self, AcmRequest, LineCoding};
use usbfn::functions::hid::command::{self, Command};
use usbfn::functions::hid::request::{self, HidRequest};
use usbfn_wire::SetupPacket;

fn setup(data: &[u8]) -> Option<(SetupPacket, u8, &[u8])> {
    let (head, rest) = data.split_at_checked(9)?;
    let bytes: [u8; 8] = head.get(..8)?.try_into().ok()?;
    Some((SetupPacket::from_bytes(bytes), *head.get(8)?, rest))
}

/// 8 setup bytes, the interface number, then a SET_LINE_CODING data stage.
pub fn cdc_request(data: &[u8]) {
    let Some((setup, interface, stage)) = setup(data) else {
        return;
    };
    match cdc::decode(&setup, interface) {
        Ok(AcmRequest::SetLineCoding) => assert_eq!(setup.w_length, 7),
        Ok(AcmRequest::GetLineCoding { len }) => assert!(len > 0),
        Ok(AcmRequest::SetControlLineState { .. } | AcmRequest::SendBreak { .. }) => {
            assert_eq!(setup.w_length, 0)
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Ok(coding) = LineCoding::parse(stage) {
        assert_eq!(&coding.to_bytes()[..], stage);
        let _ = coding.to_string();
    }
}

/// 8 setup bytes and the interface number.
pub fn hid_request(data: &[u8]) {
    let Some((setup, interface, _)) = setup(data) else {
        return;
    };
    match request::decode(&setup, interface) {
        Ok(HidRequest::GetReport { len, .. } | HidRequest::SetReport { len, .. }) => {
            assert!(len > 0 && usize::from(len) <= request::MAX_REPORT)
        }
        Ok(HidRequest::GetIdle { .. } | HidRequest::GetProtocol) => {
            assert_eq!(setup.w_length, 1)
        }
        Ok(HidRequest::SetIdle { .. } | HidRequest::SetProtocol { .. }) => {
            assert_eq!(setup.w_length, 0)
        }
        Ok(HidRequest::GetReportDescriptor { .. }) => assert_eq!(setup.w_value, 0x2200),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// One FIFO line; the first byte picks the report length (1..=64).
pub fn hid_command(data: &[u8]) {
    let Some((first, line)) = data.split_first() else {
        return;
    };
    let max = usize::from(first % 64) + 1;
    match command::parse_line(line, max) {
        Ok(Command::Report(r)) => assert!(!r.is_empty() && r.len() <= max),
        Ok(Command::Type(text)) => {
            if let Ok(reports) = command::type_reports(&text) {
                assert_eq!(reports.len(), 2 * text.chars().count());
                assert!(reports.iter().skip(1).step_by(2).all(|r| *r == [0; 8]));
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
