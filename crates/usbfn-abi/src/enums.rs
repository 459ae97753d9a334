//! The enums of `usbfnbase.h`, 32 bits on the wire, as newtypes that keep unknown values.

use crate::macros::wire_enum;

wire_enum! {
    /// `USBFN_EVENT`: what a completed `IOCTL_GENERICUSBFN_BUS_EVENT_NOTIFICATION` reports.
    ///
    /// See [`NotificationData`](crate::NotificationData) for which events carry which payload.
    #[doc(alias = "USBFN_EVENT")]
    pub struct UsbfnEvent(u32) {
        /// `UsbfnEventMinimum`: lower bound, never sent.
        MINIMUM = 0 => "UsbfnEventMinimum",
        /// VBUS is powered; no action required.
        ATTACH = 1 => "UsbfnEventAttach",
        /// A USB reset completed; carries the bus speed. Pending transfers are cancelled.
        RESET = 2 => "UsbfnEventReset",
        /// VBUS is no longer powered. Pending transfers are cancelled.
        DETACH = 3 => "UsbfnEventDetach",
        /// No SOF for 3 ms.
        SUSPEND = 4 => "UsbfnEventSuspend",
        /// Resumed from suspend to the previous state.
        RESUME = 5 => "UsbfnEventResume",
        /// A setup packet for this interface; carries the 8 setup bytes.
        SETUP_PACKET = 6 => "UsbfnEventSetupPacket",
        /// SET_CONFIGURATION with a non-zero value; carries the configuration value.
        /// Transfers are permitted from now on.
        CONFIGURED = 7 => "UsbfnEventConfigured",
        /// SET_CONFIGURATION(0). Pending transfers are cancelled.
        UNCONFIGURED = 8 => "UsbfnEventUnConfigured",
        /// Deprecated; carries a [`PortType`].
        PORT_TYPE = 9 => "UsbfnEventPortType",
        /// Deprecated.
        BUS_TEAR_DOWN = 10 => "UsbfnEventBusTearDown",
        /// SET_INTERFACE; carries an [`AlternateInterface`](crate::AlternateInterface).
        SET_INTERFACE = 11 => "UsbfnEventSetInterface",
        /// `UsbfnEventMaximum`: upper bound, never sent.
        MAXIMUM = 12 => "UsbfnEventMaximum",
    }
}

wire_enum! {
    /// `USBFN_BUS_SPEED`: the speed the device was reset into.
    #[doc(alias = "USBFN_BUS_SPEED")]
    #[doc(alias = "UsbfnBusSpeed")]
    pub struct BusSpeed(u32) {
        /// Low speed, 1.5 Mbit/s.
        LOW = 0 => "UsbfnBusSpeedLow",
        /// Full speed, 12 Mbit/s.
        FULL = 1 => "UsbfnBusSpeedFull",
        /// High speed, 480 Mbit/s.
        HIGH = 2 => "UsbfnBusSpeedHigh",
        /// SuperSpeed, 5 Gbit/s.
        SUPER = 3 => "UsbfnBusSpeedSuper",
        /// Upper bound, never a real speed.
        MAXIMUM = 4 => "UsbfnBusSpeedMaximum",
    }
}

/// The Windows-style name of [`BusSpeed`].
pub type UsbfnBusSpeed = BusSpeed;

wire_enum! {
    /// `USBFN_DIRECTION`: transfer and endpoint direction, seen from the device.
    #[doc(alias = "USBFN_DIRECTION")]
    pub struct UsbfnDirection(u32) {
        /// Lower bound.
        MINIMUM = 0 => "UsbfnDirectionMinimum",
        /// Device to host (`UsbfnDirectionTx`).
        IN = 1 => "UsbfnDirectionIn",
        /// Host to device (`UsbfnDirectionRx`).
        OUT = 2 => "UsbfnDirectionOut",
        /// Upper bound.
        MAXIMUM = 3 => "UsbfnDirectionMaximum",
    }
    aliases {
        /// `UsbfnDirectionTx`, the same value as [`IN`](Self::IN).
        TX = IN,
        /// `UsbfnDirectionRx`, the same value as [`OUT`](Self::OUT).
        RX = OUT,
    }
}

wire_enum! {
    /// `USBFN_PORT_TYPE`: what the device is plugged into (charger detection).
    #[doc(alias = "USBFN_PORT_TYPE")]
    pub struct PortType(u32) {
        /// Not known.
        UNKNOWN = 0 => "UsbfnUnknownPort",
        /// Standard downstream port (SDP).
        STANDARD_DOWNSTREAM = 1 => "UsbfnStandardDownstreamPort",
        /// Charging downstream port (CDP).
        CHARGING_DOWNSTREAM = 2 => "UsbfnChargingDownstreamPort",
        /// Dedicated charging port (DCP).
        DEDICATED_CHARGING = 3 => "UsbfnDedicatedChargingPort",
        /// Invalid dedicated charging port.
        INVALID_DEDICATED_CHARGING = 4 => "UsbfnInvalidDedicatedChargingPort",
        /// Proprietary dedicated charging port.
        PROPRIETARY_DEDICATED_CHARGING = 5 => "UsbfnProprietaryDedicatedChargingPort",
        /// Upper bound.
        MAXIMUM = 6 => "UsbfnPortTypeMaximum",
    }
}

wire_enum! {
    /// `USBFN_DEVICE_STATE`: the chapter-9 state of the device.
    #[doc(alias = "USBFN_DEVICE_STATE")]
    pub struct DeviceState(u32) {
        /// Lower bound.
        MINIMUM = 0 => "UsbfnDeviceStateMinimum",
        /// VBUS is powered.
        ATTACHED = 1 => "UsbfnDeviceStateAttached",
        /// A USB reset was received.
        DEFAULT = 2 => "UsbfnDeviceStateDefault",
        /// VBUS is not powered.
        DETACHED = 3 => "UsbfnDeviceStateDetached",
        /// SET_ADDRESS was received.
        ADDRESSED = 4 => "UsbfnDeviceStateAddressed",
        /// SET_CONFIGURATION was received.
        CONFIGURED = 5 => "UsbfnDeviceStateConfigured",
        /// No SOF for 3 ms.
        SUSPENDED = 6 => "UsbfnDeviceStateSuspended",
        /// Upper bound (`usbfnbase.h` spells it `UsbfnDeviceStateStateMaximum`).
        MAXIMUM = 7 => "UsbfnDeviceStateStateMaximum",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_values_match_header() {
        let expected = [
            (UsbfnEvent::MINIMUM, 0),
            (UsbfnEvent::ATTACH, 1),
            (UsbfnEvent::RESET, 2),
            (UsbfnEvent::DETACH, 3),
            (UsbfnEvent::SUSPEND, 4),
            (UsbfnEvent::RESUME, 5),
            (UsbfnEvent::SETUP_PACKET, 6),
            (UsbfnEvent::CONFIGURED, 7),
            (UsbfnEvent::UNCONFIGURED, 8),
            (UsbfnEvent::PORT_TYPE, 9),
            (UsbfnEvent::BUS_TEAR_DOWN, 10),
            (UsbfnEvent::SET_INTERFACE, 11),
            (UsbfnEvent::MAXIMUM, 12),
        ];
        for (event, value) in expected {
            assert_eq!(event.0, value);
        }
        assert_eq!(UsbfnEvent::KNOWN.len(), expected.len());
    }

    #[test]
    fn other_enum_values_match_header() {
        assert_eq!(
            [
                BusSpeed::LOW,
                BusSpeed::FULL,
                BusSpeed::HIGH,
                BusSpeed::SUPER,
                BusSpeed::MAXIMUM
            ]
            .map(|v| v.0),
            [0, 1, 2, 3, 4]
        );
        assert_eq!(
            [
                UsbfnDirection::MINIMUM,
                UsbfnDirection::IN,
                UsbfnDirection::OUT,
                UsbfnDirection::MAXIMUM
            ]
            .map(|v| v.0),
            [0, 1, 2, 3]
        );
        assert_eq!(UsbfnDirection::TX, UsbfnDirection::IN);
        assert_eq!(UsbfnDirection::RX, UsbfnDirection::OUT);
        assert_eq!(
            PortType::KNOWN.iter().map(|v| v.0).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5, 6]
        );
        assert_eq!(
            DeviceState::KNOWN.iter().map(|v| v.0).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5, 6, 7]
        );
    }

    #[test]
    fn names_and_debug() {
        assert_eq!(
            UsbfnEvent::SETUP_PACKET.name(),
            Some("UsbfnEventSetupPacket")
        );
        assert_eq!(format!("{:?}", UsbfnEvent::RESET), "UsbfnEventReset");
        assert_eq!(format!("{:?}", UsbfnEvent(13)), "UsbfnEvent(0x0000000d)");
        assert_eq!(format!("{}", BusSpeed(0xdead_beef)), "BusSpeed(0xdeadbeef)");
        assert_eq!(UsbfnDirection::TX.name(), Some("UsbfnDirectionIn"));
        assert_eq!(PortType(99).name(), None);
        assert!(!PortType(99).is_known());
        assert!(DeviceState::SUSPENDED.is_known());
    }

    #[test]
    fn unknown_values_survive_conversions() {
        let v = UsbfnEvent::from(0x1234_5678);
        assert_eq!(u32::from(v), 0x1234_5678);
        assert_eq!(UsbfnEvent::from_le_bytes(v.to_le_bytes()), v);
        assert_eq!(v.to_le_bytes(), [0x78, 0x56, 0x34, 0x12]);
    }
}
