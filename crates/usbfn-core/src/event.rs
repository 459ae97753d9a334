//! Bus events as a service sees them (`BUS_EVENT_NOTIFICATION`).

use usbfn_abi::{AlternateInterface, Notification, NotificationData, UsbfnEvent};
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
    /// The `USBFN_NOTIFICATION` a service receives for this event.
    pub fn to_notification(&self) -> Notification {
        let (event, data) = match *self {
            BusEvent::Attach => (UsbfnEvent::ATTACH, NotificationData::None),
            BusEvent::Reset(speed) => (
                UsbfnEvent::RESET,
                NotificationData::BusSpeed(speed.to_abi()),
            ),
            BusEvent::Detach => (UsbfnEvent::DETACH, NotificationData::None),
            BusEvent::Suspend => (UsbfnEvent::SUSPEND, NotificationData::None),
            BusEvent::Resume => (UsbfnEvent::RESUME, NotificationData::None),
            BusEvent::SetupPacket(setup) => (
                UsbfnEvent::SETUP_PACKET,
                NotificationData::SetupPacket(setup.to_bytes()),
            ),
            BusEvent::Configured(value) => (
                UsbfnEvent::CONFIGURED,
                NotificationData::ConfigurationValue(value),
            ),
            BusEvent::UnConfigured => (UsbfnEvent::UNCONFIGURED, NotificationData::None),
            BusEvent::SetInterface {
                interface,
                alternate,
            } => (
                UsbfnEvent::SET_INTERFACE,
                NotificationData::AlternateInterface(AlternateInterface {
                    interface_number: interface,
                    alternate_interface_number: alternate,
                }),
            ),
        };
        Notification { event, data }
    }

    /// The 12 bytes of [`BusEvent::to_notification`] ([`Notification::encode`]).
    pub fn to_notification_bytes(&self) -> [u8; Notification::SIZE] {
        self.to_notification().encode()
    }

    /// The event a `USBFN_NOTIFICATION` carries: `Ok(None)` for events the service API does
    /// not carry (the deprecated PortType, BusTearDown, unknown values), `Err` for a Reset
    /// whose bus speed is not full, high or SuperSpeed.
    pub fn from_notification(n: &Notification) -> Result<Option<BusEvent>, usbfn_abi::BusSpeed> {
        Ok(Some(match (n.event, n.data) {
            (UsbfnEvent::ATTACH, _) => BusEvent::Attach,
            (UsbfnEvent::RESET, NotificationData::BusSpeed(s)) => {
                BusEvent::Reset(BusSpeed::from_abi(s).ok_or(s)?)
            }
            (UsbfnEvent::DETACH, _) => BusEvent::Detach,
            (UsbfnEvent::SUSPEND, _) => BusEvent::Suspend,
            (UsbfnEvent::RESUME, _) => BusEvent::Resume,
            (UsbfnEvent::SETUP_PACKET, NotificationData::SetupPacket(b)) => {
                BusEvent::SetupPacket(SetupPacket::from_bytes(b))
            }
            (UsbfnEvent::CONFIGURED, NotificationData::ConfigurationValue(v)) => {
                BusEvent::Configured(v)
            }
            (UsbfnEvent::UNCONFIGURED, _) => BusEvent::UnConfigured,
            (UsbfnEvent::SET_INTERFACE, NotificationData::AlternateInterface(a)) => {
                BusEvent::SetInterface {
                    interface: a.interface_number,
                    alternate: a.alternate_interface_number,
                }
            }
            _ => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_survives_the_notification_codec() {
        let setup = SetupPacket::from_bytes([0xc0, 0x5c, 1, 2, 3, 4, 5, 6]);
        let events = [
            BusEvent::Attach,
            BusEvent::Reset(BusSpeed::Full),
            BusEvent::Reset(BusSpeed::High),
            BusEvent::Reset(BusSpeed::Super),
            BusEvent::Detach,
            BusEvent::Suspend,
            BusEvent::Resume,
            BusEvent::SetupPacket(setup),
            BusEvent::Configured(0x0102),
            BusEvent::UnConfigured,
            BusEvent::SetInterface {
                interface: 3,
                alternate: 0x0201,
            },
        ];
        for event in events {
            let bytes = event.to_notification_bytes();
            let n = Notification::decode(&bytes).expect("12 bytes");
            assert_eq!(
                BusEvent::from_notification(&n),
                Ok(Some(event)),
                "{bytes:02x?}"
            );
        }
        assert_eq!(
            BusEvent::SetInterface {
                interface: 3,
                alternate: 0x0201
            }
            .to_notification_bytes(),
            [11, 0, 0, 0, 3, 0, 1, 2, 0, 0, 0, 0]
        );
        let low = Notification {
            event: UsbfnEvent::RESET,
            data: NotificationData::BusSpeed(usbfn_abi::BusSpeed::LOW),
        };
        assert_eq!(
            BusEvent::from_notification(&low),
            Err(usbfn_abi::BusSpeed::LOW)
        );
    }
}
