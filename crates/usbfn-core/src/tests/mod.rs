//! Device-level tests: a simulated host (`SimHost`) and a scripted service pump the sans-IO
//! core.

mod descriptors;
#[allow(clippy::cast_possible_truncation)] // test sizes are small
mod periodic;
mod requests;
mod transfers;

use bytes::Bytes;
use usbfn_wire::{Direction, Recipient, RequestType, SetupPacket, StandardRequest};

use crate::*;

pub(super) const GZ: &str = r#"
    [device]
    vendor_id = 0x0525
    product_id = 0xa4a0
    manufacturer = "usbfn"
    product = "Gadget Zero"
    serial = "0123456789"
    [[interfaces]]
    name = "source-sink"
    guid = "{6C5B3F5E-0D6F-4B0E-9A59-0A5C3B0E7D11}"
    device_request_owner = true
    [[interfaces.endpoints]]
    direction = "in"
    type = "bulk"
    [[interfaces.endpoints]]
    direction = "out"
    type = "bulk"
    [[interfaces.alternates]]
    class = 0xff
    [[interfaces.alternates.endpoints]]
    direction = "in"
    type = "interrupt"
    max_packet = 64
"#;

pub(super) use crate::testkit::SimHost;

pub(super) const F0: FunctionId = FunctionId(0);

pub(super) fn std_out(
    request: StandardRequest,
    recipient: Recipient,
    value: u16,
    index: u16,
) -> SetupPacket {
    SetupPacket::new(
        Direction::Out,
        RequestType::Standard,
        recipient,
        request.0,
        value,
        index,
        0,
    )
}

pub(super) fn std_in(
    request: StandardRequest,
    recipient: Recipient,
    value: u16,
    index: u16,
    len: u16,
) -> SetupPacket {
    SetupPacket::new(
        Direction::In,
        RequestType::Standard,
        recipient,
        request.0,
        value,
        index,
        len,
    )
}
