//! Bus events as a service sees them (`BUS_EVENT_NOTIFICATION`).

use usbfn_wire::SetupPacket;

use crate::types::BusSpeed;

/// One `USBFN_NOTIFICATION`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BusEvent {
    /// The device was connected to a host port.
    Attach,
    /// A bus reset at this speed: every transfer was cancelled.
    Reset(BusSpeed),
    /// The device was disconnected: every transfer was cancelled.
    Detach,
    /// The bus went idle.
    Suspend,
    /// The bus resumed.
    Resume,
    /// A setup packet for this interface: answer it on pipe 0 (a data-stage transfer, then a
    /// status handshake), or stall pipe 0.
    SetupPacket(SetupPacket),
    /// SET_CONFIGURATION with this value: data transfers may start.
    Configured(u16),
    /// The configuration was dropped (SET_CONFIGURATION 0, or a new SET_CONFIGURATION):
    /// every data transfer was cancelled.
    UnConfigured,
    /// SET_INTERFACE on this interface: its transfers were cancelled.
    SetInterface {
        /// bInterfaceNumber.
        interface: u16,
        /// bAlternateSetting.
        alternate: u16,
    },
}

impl BusEvent {
    /// The GenericUSBFn wire form.
    pub fn to_notification_bytes(&self) -> [u8; 12] {
        use usbfn_abi::UsbfnEvent;
        let mut out = [0u8; 12];
        let (event, payload): (UsbfnEvent, [u8; 8]) = match *self {
            BusEvent::Attach => (UsbfnEvent::ATTACH, [0; 8]),
            BusEvent::Reset(speed) => (UsbfnEvent::RESET, pad4(speed.to_abi().0.to_le_bytes())),
            BusEvent::Detach => (UsbfnEvent::DETACH, [0; 8]),
            BusEvent::Suspend => (UsbfnEvent::SUSPEND, [0; 8]),
            BusEvent::Resume => (UsbfnEvent::RESUME, [0; 8]),
            BusEvent::SetupPacket(setup) => (UsbfnEvent::SETUP_PACKET, setup.to_bytes()),
            BusEvent::Configured(value) => {
                let [a, b] = value.to_le_bytes();
                (UsbfnEvent::CONFIGURED, [a, b, 0, 0, 0, 0, 0, 0])
            }
            BusEvent::UnConfigured => (UsbfnEvent::UNCONFIGURED, [0; 8]),
            BusEvent::SetInterface {
                interface,
                alternate,
            } => {
                let [a, b] = interface.to_le_bytes();
                let [c, d] = alternate.to_le_bytes();
                (UsbfnEvent::SET_INTERFACE, [a, b, c, d, 0, 0, 0, 0])
            }
        };
        out[..4].copy_from_slice(&event.0.to_le_bytes());
        out[4..].copy_from_slice(&payload);
        out
    }
}

fn pad4(b: [u8; 4]) -> [u8; 8] {
    [b[0], b[1], b[2], b[3], 0, 0, 0, 0]
}
