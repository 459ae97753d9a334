//! Small wire enums of the URB headers: [`Direction`], [`TransferFlags`] and [`errno`].

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// Linux errno values as USB/IP carries them (negated) in `status` fields: the core's one
/// definition (`usbfn_core::status::errno`).
pub use usbfn_core::status::errno;

/// Direction of a URB's data stage, as the `direction` header field carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Host to device (0).
    Out,
    /// Device to host (1).
    In,
}

impl Direction {
    /// Decodes the header field; other values than 0 and 1 are `None`.
    pub const fn from_wire(value: u32) -> Option<Direction> {
        match value {
            0 => Some(Direction::Out),
            1 => Some(Direction::In),
            _ => None,
        }
    }

    /// The header field value.
    pub const fn to_wire(self) -> u32 {
        match self {
            Direction::Out => 0,
            Direction::In => 1,
        }
    }

    /// Whether this is [`Direction::In`].
    pub const fn is_in(self) -> bool {
        matches!(self, Direction::In)
    }
}

/// The `transfer_flags` of CMD_SUBMIT (the `USBIP_URB_*` values). Unknown bits are kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TransferFlags(pub u32);

impl TransferFlags {
    /// No flags.
    pub const NONE: TransferFlags = TransferFlags(0);
    /// A short IN transfer is an error (-EREMOTEIO).
    #[doc(alias = "URB_SHORT_NOT_OK")]
    pub const SHORT_NOT_OK: TransferFlags = TransferFlags(0x1);
    /// Isochronous: start as soon as possible.
    #[doc(alias = "URB_ISO_ASAP")]
    pub const ISO_ASAP: TransferFlags = TransferFlags(0x2);
    /// Host-side DMA detail.
    #[doc(alias = "URB_NO_TRANSFER_DMA_MAP")]
    pub const NO_TRANSFER_DMA_MAP: TransferFlags = TransferFlags(0x4);
    /// End an OUT transfer whose length is a multiple of wMaxPacketSize with a ZLP.
    #[doc(alias = "URB_ZERO_PACKET")]
    pub const ZERO_PACKET: TransferFlags = TransferFlags(0x40);
    /// Host-side interrupt hint.
    #[doc(alias = "URB_NO_INTERRUPT")]
    pub const NO_INTERRUPT: TransferFlags = TransferFlags(0x80);
    /// Host-side buffer ownership.
    #[doc(alias = "URB_FREE_BUFFER")]
    pub const FREE_BUFFER: TransferFlags = TransferFlags(0x100);
    /// The URB is device-to-host.
    #[doc(alias = "URB_DIR_IN")]
    pub const DIR_IN: TransferFlags = TransferFlags(0x200);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: TransferFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for TransferFlags {
    type Output = TransferFlags;
    fn bitor(self, rhs: TransferFlags) -> TransferFlags {
        TransferFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TransferFlags {
    fn bitor_assign(&mut self, rhs: TransferFlags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for TransferFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(u32, &str); 7] = [
            (0x1, "SHORT_NOT_OK"),
            (0x2, "ISO_ASAP"),
            (0x4, "NO_TRANSFER_DMA_MAP"),
            (0x40, "ZERO_PACKET"),
            (0x80, "NO_INTERRUPT"),
            (0x100, "FREE_BUFFER"),
            (0x200, "DIR_IN"),
        ];
        write!(f, "TransferFlags(")?;
        let mut rest = self.0;
        let mut first = true;
        for (bit, name) in NAMES {
            if rest & bit != 0 {
                write!(f, "{}{name}", if first { "" } else { " | " })?;
                rest &= !bit;
                first = false;
            }
        }
        if rest != 0 || first {
            write!(f, "{}{rest:#x}", if first { "" } else { " | " })?;
        }
        write!(f, ")")
    }
}
