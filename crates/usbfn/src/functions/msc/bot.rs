//! Bulk-Only Transport 1.0: the command block wrapper (CBW), the command status wrapper
//! (CSW), and the thirteen cases of §6.7 (what the host expects against what the device
//! intends) turned into one [`Plan`] per command. Sans-IO.

/// `dCBWSignature`, "USBC".
pub const CBW_SIGNATURE: u32 = 0x4342_5355;
/// `dCSWSignature`, "USBS".
pub const CSW_SIGNATURE: u32 = 0x5342_5355;
/// A CBW is exactly this long.
pub const CBW_LEN: usize = 31;
/// A CSW is exactly this long.
pub const CSW_LEN: usize = 13;
/// Bulk-Only Mass Storage Reset (class, interface, OUT).
pub const REQUEST_RESET: u8 = 0xff;
/// Get Max LUN (class, interface, IN, 1 byte).
pub const REQUEST_GET_MAX_LUN: u8 = 0xfe;
/// At most 16 LUNs (bCBWLUN has 4 bits).
pub const MAX_LUNS: usize = 16;

/// Why a CBW was not valid or not meaningful (BOT §6.2): the device stalls both bulk
/// endpoints until reset recovery.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CbwError {
    /// Not 31 bytes.
    #[error("CBW of {0} bytes (a CBW is exactly 31)")]
    Length(usize),
    /// Wrong `dCBWSignature`.
    #[error("CBW signature {0:#010x} (expected 0x43425355 \"USBC\")")]
    Signature(u32),
    /// Reserved bits of `bmCBWFlags`, `bCBWLUN` or `bCBWCBLength` set.
    #[error(
        "CBW reserved bits set (flags {flags:#04x}, LUN byte {lun:#04x}, CB length byte {cb:#04x})"
    )]
    Reserved {
        /// `bmCBWFlags`.
        flags: u8,
        /// The LUN byte.
        lun: u8,
        /// The CB length byte.
        cb: u8,
    },
    /// `bCBWCBLength` outside 1..=16.
    #[error("CBW command block length {0} (allowed 1..=16)")]
    CbLength(u8),
}

/// Data direction the host expects (`bmCBWFlags` bit 7 and `dCBWDataTransferLength`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Hn: no data.
    None,
    /// Hi: `len` bytes to the host.
    In(u32),
    /// Ho: `len` bytes from the host.
    Out(u32),
}

/// A command block wrapper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cbw {
    /// `dCBWTag`, echoed in the CSW.
    pub tag: u32,
    /// `dCBWDataTransferLength` with the direction.
    pub expect: Expect,
    /// `bCBWLUN`.
    pub lun: u8,
    /// `CBWCB[..bCBWCBLength]`.
    pub cb: Vec<u8>,
}

impl Cbw {
    /// Decode a received CBW.
    pub fn parse(b: &[u8]) -> Result<Cbw, CbwError> {
        let b: &[u8; CBW_LEN] = b.try_into().map_err(|_| CbwError::Length(b.len()))?;
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let signature = u32_at(0);
        if signature != CBW_SIGNATURE {
            return Err(CbwError::Signature(signature));
        }
        let (flags, lun, cb) = (b[12], b[13], b[14]);
        if flags & 0x7f != 0 || lun & 0xf0 != 0 || cb & 0xe0 != 0 {
            return Err(CbwError::Reserved { flags, lun, cb });
        }
        if !(1..=16).contains(&cb) {
            return Err(CbwError::CbLength(cb));
        }
        let len = u32_at(8);
        let expect = match (len, flags & 0x80 != 0) {
            (0, _) => Expect::None,
            (n, true) => Expect::In(n),
            (n, false) => Expect::Out(n),
        };
        Ok(Cbw {
            tag: u32_at(4),
            expect,
            lun,
            cb: b[15..15 + usize::from(cb)].to_vec(),
        })
    }

    /// Encode (for tests and the simulated host).
    pub fn emit(&self) -> [u8; CBW_LEN] {
        let mut b = [0u8; CBW_LEN];
        b[..4].copy_from_slice(&CBW_SIGNATURE.to_le_bytes());
        b[4..8].copy_from_slice(&self.tag.to_le_bytes());
        let (len, flags) = match self.expect {
            Expect::None => (0, 0),
            Expect::In(n) => (n, 0x80),
            Expect::Out(n) => (n, 0),
        };
        b[8..12].copy_from_slice(&len.to_le_bytes());
        b[12] = flags;
        b[13] = self.lun & 0x0f;
        let n = self.cb.len().min(16);
        b[14] = u8::try_from(n).unwrap_or(16);
        b[15..15 + n].copy_from_slice(&self.cb[..n]);
        b
    }
}

/// `bCSWStatus`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Command passed.
    Passed = 0,
    /// Command failed (the host asks REQUEST SENSE).
    Failed = 1,
    /// Phase error (the host does reset recovery).
    PhaseError = 2,
}

/// A command status wrapper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Csw {
    /// `dCSWTag`.
    pub tag: u32,
    /// `dCSWDataResidue`.
    pub residue: u32,
    /// `bCSWStatus`.
    pub status: Status,
}

impl Csw {
    /// Encode.
    pub fn emit(&self) -> [u8; CSW_LEN] {
        let mut b = [0u8; CSW_LEN];
        b[..4].copy_from_slice(&CSW_SIGNATURE.to_le_bytes());
        b[4..8].copy_from_slice(&self.tag.to_le_bytes());
        b[8..12].copy_from_slice(&self.residue.to_le_bytes());
        b[12] = self.status as u8;
        b
    }

    /// Decode (for tests and the simulated host): `None` unless 13 bytes with the signature.
    pub fn parse(b: &[u8]) -> Option<Csw> {
        let b: &[u8; CSW_LEN] = b.try_into().ok()?;
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if u32_at(0) != CSW_SIGNATURE {
            return None;
        }
        let status = match b[12] {
            0 => Status::Passed,
            1 => Status::Failed,
            _ => Status::PhaseError,
        };
        Some(Csw {
            tag: u32_at(4),
            residue: u32_at(8),
            status,
        })
    }
}

/// What the device intends to transfer (Dn, Di, Do), in bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Dn.
    None,
    /// Di.
    In(u64),
    /// Do.
    Out(u64),
}

/// How the transport handles one command (BOT §6.7's thirteen cases).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Which case, 1..=13 (for logs and tests).
    pub case: u8,
    /// Bytes to move in the data stage (at most what both sides want).
    pub transfer: u32,
    /// Halt the data endpoint (bulk IN for Hi, bulk OUT for Ho) after the data stage: the
    /// host expected more than the device moves.
    pub stall: bool,
    /// Report a phase error instead of the command's status (and do not execute it).
    pub phase_error: bool,
}

impl Plan {
    /// The plan for host expectation `h` against device intention `d`.
    pub fn new(h: Expect, d: Intent) -> Plan {
        let plan = |case, transfer, stall, phase_error| Plan {
            case,
            transfer,
            stall,
            phase_error,
        };
        match (h, d) {
            (Expect::None, Intent::None) => plan(1, 0, false, false),
            (Expect::None, Intent::In(_)) => plan(2, 0, false, true),
            (Expect::None, Intent::Out(_)) => plan(3, 0, false, true),
            (Expect::In(_), Intent::None) => plan(4, 0, true, false),
            (Expect::In(h), Intent::In(d)) => match u64::from(h).cmp(&d) {
                std::cmp::Ordering::Greater => plan(5, small(d), true, false),
                std::cmp::Ordering::Equal => plan(6, h, false, false),
                // Case 7: the host gets what it asked for, then a phase error.
                std::cmp::Ordering::Less => plan(7, h, false, true),
            },
            (Expect::In(_), Intent::Out(_)) => plan(8, 0, true, true),
            (Expect::Out(_), Intent::None) => plan(9, 0, true, false),
            (Expect::Out(_), Intent::In(_)) => plan(10, 0, true, true),
            (Expect::Out(h), Intent::Out(d)) => match u64::from(h).cmp(&d) {
                std::cmp::Ordering::Greater => plan(11, small(d), true, false),
                std::cmp::Ordering::Equal => plan(12, h, false, false),
                std::cmp::Ordering::Less => plan(13, h, false, true),
            },
        }
    }
}

/// `d` when it is smaller than some u32 (the caller knows it is below the host's u32).
fn small(d: u64) -> u32 {
    u32::try_from(d).unwrap_or(u32::MAX)
}

impl Expect {
    /// `dCBWDataTransferLength`.
    pub fn len(&self) -> u32 {
        match *self {
            Expect::None => 0,
            Expect::In(n) | Expect::Out(n) => n,
        }
    }

    /// True for Hn.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cbw(len: u32, flags: u8, lun: u8, cb: &[u8]) -> [u8; 31] {
        let mut b = [0u8; 31];
        b[..4].copy_from_slice(b"USBC");
        b[4..8].copy_from_slice(&0xdead_beef_u32.to_le_bytes());
        b[8..12].copy_from_slice(&len.to_le_bytes());
        b[12] = flags;
        b[13] = lun;
        b[14] = u8::try_from(cb.len()).expect("short");
        b[15..15 + cb.len()].copy_from_slice(cb);
        b
    }

    #[test]
    fn cbw_decodes_and_round_trips() {
        let raw = cbw(36, 0x80, 1, &[0x12, 0, 0, 0, 36, 0]);
        let c = Cbw::parse(&raw).expect("valid");
        assert_eq!(c.tag, 0xdead_beef);
        assert_eq!(c.expect, Expect::In(36));
        assert_eq!(c.lun, 1);
        assert_eq!(c.cb, [0x12, 0, 0, 0, 36, 0]);
        assert_eq!(c.emit(), raw);
        assert_eq!(
            Cbw::parse(&cbw(0, 0x80, 0, &[0])).map(|c| c.expect),
            Ok(Expect::None),
            "no data whatever the direction bit"
        );
    }

    #[test]
    fn invalid_and_meaningless_cbws() {
        assert_eq!(Cbw::parse(&[0u8; 30]), Err(CbwError::Length(30)));
        assert_eq!(Cbw::parse(&[0u8; 32]), Err(CbwError::Length(32)));
        let mut raw = cbw(0, 0, 0, &[0]);
        raw[0] = b'X';
        assert!(matches!(Cbw::parse(&raw), Err(CbwError::Signature(_))));
        assert!(matches!(
            Cbw::parse(&cbw(0, 0x40, 0, &[0])),
            Err(CbwError::Reserved { .. })
        ));
        assert!(matches!(
            Cbw::parse(&cbw(0, 0, 0x10, &[0])),
            Err(CbwError::Reserved { .. })
        ));
        assert_eq!(Cbw::parse(&cbw(0, 0, 0, &[])), Err(CbwError::CbLength(0)));
        let mut raw = cbw(0, 0, 0, &[0]);
        raw[14] = 17;
        assert_eq!(Cbw::parse(&raw), Err(CbwError::CbLength(17)));
    }

    #[test]
    fn csw_bytes() {
        let c = Csw {
            tag: 7,
            residue: 0x100,
            status: Status::Failed,
        };
        assert_eq!(
            c.emit(),
            [b'U', b'S', b'B', b'S', 7, 0, 0, 0, 0, 1, 0, 0, 1]
        );
        assert_eq!(Csw::parse(&c.emit()), Some(c));
    }

    #[test]
    fn the_thirteen_cases() {
        use Expect as H;
        use Intent as D;
        let cases = [
            (H::None, D::None, (1, 0, false, false)),
            (H::None, D::In(8), (2, 0, false, true)),
            (H::None, D::Out(8), (3, 0, false, true)),
            (H::In(8), D::None, (4, 0, true, false)),
            (H::In(36), D::In(18), (5, 18, true, false)),
            (H::In(36), D::In(36), (6, 36, false, false)),
            (H::In(512), D::In(1024), (7, 512, false, true)),
            (H::In(512), D::Out(512), (8, 0, true, true)),
            (H::Out(512), D::None, (9, 0, true, false)),
            (H::Out(512), D::In(512), (10, 0, true, true)),
            (H::Out(1024), D::Out(512), (11, 512, true, false)),
            (H::Out(512), D::Out(512), (12, 512, false, false)),
            (H::Out(512), D::Out(1024), (13, 512, false, true)),
        ];
        for (h, d, (case, transfer, stall, phase_error)) in cases {
            assert_eq!(
                Plan::new(h, d),
                Plan {
                    case,
                    transfer,
                    stall,
                    phase_error
                },
                "{h:?} against {d:?}"
            );
        }
    }
}
