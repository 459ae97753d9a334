//! Endpoint addresses and the endpoint attribute fields.

use core::fmt;

use crate::{Direction, WireError};

/// An endpoint address (`bEndpointAddress`): number in bits 3..0, direction in bit 7.
///
/// The inner byte is kept as found, including the reserved bits 6..4, so a parsed descriptor
/// re-encodes unchanged; [`is_valid`](Self::is_valid) checks them.
#[doc(alias = "bEndpointAddress")]
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointAddress(pub u8);

/// The transfer type of an endpoint (bits 1..0 of the endpoint's `bmAttributes`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TransferType {
    /// Control (only endpoint 0 in practice).
    Control,
    /// Isochronous.
    Isochronous,
    /// Bulk.
    Bulk,
    /// Interrupt.
    Interrupt,
}

/// Isochronous synchronization type (bits 3..2 of the endpoint's `bmAttributes`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SynchronizationType {
    /// No synchronization.
    NoSync,
    /// Asynchronous.
    Asynchronous,
    /// Adaptive.
    Adaptive,
    /// Synchronous.
    Synchronous,
}

/// Isochronous (and, for SuperSpeed, interrupt) usage type (bits 5..4 of the endpoint's
/// `bmAttributes`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum UsageType {
    /// Data endpoint (periodic, for interrupt).
    Data,
    /// Feedback endpoint (notification, for interrupt).
    Feedback,
    /// Implicit feedback data endpoint.
    ImplicitFeedbackData,
    /// The reserved value 3.
    Reserved,
}

impl EndpointAddress {
    /// Endpoint 0, OUT direction (`0x00`).
    pub const EP0_OUT: Self = Self(0x00);
    /// Endpoint 0, IN direction (`0x80`).
    pub const EP0_IN: Self = Self(0x80);

    /// Builds an address; `number` must be in `0..=15`.
    pub const fn new(number: u8, direction: Direction) -> Result<Self, WireError> {
        if number > 15 {
            return Err(WireError::InvalidEndpointNumber(number));
        }
        Ok(Self(number | direction.bm_request_type_bits()))
    }

    /// The endpoint number (bits 3..0).
    pub const fn number(self) -> u8 {
        self.0 & 0x0f
    }

    /// The direction (bit 7).
    pub const fn direction(self) -> Direction {
        Direction::from_endpoint_address(self.0)
    }

    /// Whether this is an IN (device to host) endpoint.
    pub const fn is_in(self) -> bool {
        self.direction().is_in()
    }

    /// Whether the reserved bits 6..4 are zero.
    pub const fn is_valid(self) -> bool {
        self.0 & 0x70 == 0
    }
}

impl fmt::Display for EndpointAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:#04x} (EP{} {})",
            self.0,
            self.number(),
            self.direction()
        )
    }
}

impl fmt::Debug for EndpointAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EndpointAddress({self})")
    }
}

impl From<u8> for EndpointAddress {
    fn from(value: u8) -> Self {
        Self(value)
    }
}

impl From<EndpointAddress> for u8 {
    fn from(value: EndpointAddress) -> Self {
        value.0
    }
}

impl TransferType {
    /// The transfer type in bits 1..0 of an endpoint's `bmAttributes`.
    pub const fn from_attributes(bm_attributes: u8) -> Self {
        match bm_attributes & 0x3 {
            0 => Self::Control,
            1 => Self::Isochronous,
            2 => Self::Bulk,
            _ => Self::Interrupt,
        }
    }

    /// The value of bits 1..0 of `bmAttributes`.
    pub const fn to_bits(self) -> u8 {
        match self {
            Self::Control => 0,
            Self::Isochronous => 1,
            Self::Bulk => 2,
            Self::Interrupt => 3,
        }
    }
}

impl fmt::Display for TransferType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Control => "control",
            Self::Isochronous => "isochronous",
            Self::Bulk => "bulk",
            Self::Interrupt => "interrupt",
        })
    }
}

impl SynchronizationType {
    /// The synchronization type in bits 3..2 of an endpoint's `bmAttributes`.
    pub const fn from_attributes(bm_attributes: u8) -> Self {
        match (bm_attributes >> 2) & 0x3 {
            0 => Self::NoSync,
            1 => Self::Asynchronous,
            2 => Self::Adaptive,
            _ => Self::Synchronous,
        }
    }

    /// The value shifted into bits 3..2 of `bmAttributes`.
    pub const fn to_bits(self) -> u8 {
        match self {
            Self::NoSync => 0,
            Self::Asynchronous => 1 << 2,
            Self::Adaptive => 2 << 2,
            Self::Synchronous => 3 << 2,
        }
    }
}

impl UsageType {
    /// The usage type in bits 5..4 of an endpoint's `bmAttributes`.
    pub const fn from_attributes(bm_attributes: u8) -> Self {
        match (bm_attributes >> 4) & 0x3 {
            0 => Self::Data,
            1 => Self::Feedback,
            2 => Self::ImplicitFeedbackData,
            _ => Self::Reserved,
        }
    }

    /// The value shifted into bits 5..4 of `bmAttributes`.
    pub const fn to_bits(self) -> u8 {
        match self {
            Self::Data => 0,
            Self::Feedback => 1 << 4,
            Self::ImplicitFeedbackData => 2 << 4,
            Self::Reserved => 3 << 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_address_parts() {
        let ep = EndpointAddress::new(1, Direction::In).unwrap();
        assert_eq!(ep, EndpointAddress(0x81));
        assert_eq!(ep.number(), 1);
        assert!(ep.is_in());
        assert!(ep.is_valid());
        assert_eq!(ep.to_string(), "0x81 (EP1 IN)");
        assert_eq!(format!("{ep:?}"), "EndpointAddress(0x81 (EP1 IN))");
        let out = EndpointAddress::new(15, Direction::Out).unwrap();
        assert_eq!(out.0, 0x0f);
        assert_eq!(out.to_string(), "0x0f (EP15 OUT)");
        assert_eq!(
            EndpointAddress::new(16, Direction::Out),
            Err(WireError::InvalidEndpointNumber(16))
        );
        assert!(!EndpointAddress(0x91).is_valid());
        assert_eq!(EndpointAddress::EP0_IN.direction(), Direction::In);
    }

    #[test]
    fn attribute_fields_round_trip() {
        for bits in 0..4u8 {
            assert_eq!(TransferType::from_attributes(bits).to_bits(), bits);
            assert_eq!(
                SynchronizationType::from_attributes(bits << 2).to_bits(),
                bits << 2
            );
            assert_eq!(UsageType::from_attributes(bits << 4).to_bits(), bits << 4);
        }
        assert_eq!(TransferType::from_attributes(0xfe), TransferType::Bulk);
        assert_eq!(TransferType::Interrupt.to_string(), "interrupt");
        // An asynchronous isochronous data endpoint.
        assert_eq!(
            SynchronizationType::from_attributes(0x05),
            SynchronizationType::Asynchronous
        );
        assert_eq!(UsageType::from_attributes(0x11), UsageType::Feedback);
    }
}
