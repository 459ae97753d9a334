//! SCSI (SPC/SBC) for mass storage: command descriptor blocks decoded into [`Command`], the
//! sense data a failed command leaves, and the replies of the commands that do not move
//! blocks. Sans-IO: nothing here touches the image; [`Lun::execute`] says what the transport
//! must do ([`Action`]).
//!
//! Decoding never panics: a CDB shorter than its operation code needs is
//! [`Sense::INVALID_FIELD_IN_CDB`], an operation code not listed is
//! [`Sense::INVALID_COMMAND`] (ILLEGAL REQUEST, ASC 0x20).

/// Bytes per logical block.
pub const BLOCK_SIZE: u32 = 512;
/// [`BLOCK_SIZE`] as a u64, for offsets.
pub const BLOCK: u64 = BLOCK_SIZE as u64;

/// Operation codes.
pub mod opcode {
    /// TEST UNIT READY.
    pub const TEST_UNIT_READY: u8 = 0x00;
    /// REQUEST SENSE.
    pub const REQUEST_SENSE: u8 = 0x03;
    /// READ(6).
    pub const READ_6: u8 = 0x08;
    /// WRITE(6).
    pub const WRITE_6: u8 = 0x0a;
    /// INQUIRY.
    pub const INQUIRY: u8 = 0x12;
    /// MODE SENSE(6).
    pub const MODE_SENSE_6: u8 = 0x1a;
    /// START STOP UNIT.
    pub const START_STOP_UNIT: u8 = 0x1b;
    /// PREVENT ALLOW MEDIUM REMOVAL.
    pub const PREVENT_ALLOW_MEDIUM_REMOVAL: u8 = 0x1e;
    /// READ FORMAT CAPACITIES (MMC, asked by Windows).
    pub const READ_FORMAT_CAPACITIES: u8 = 0x23;
    /// READ CAPACITY(10).
    pub const READ_CAPACITY_10: u8 = 0x25;
    /// READ(10).
    pub const READ_10: u8 = 0x28;
    /// WRITE(10).
    pub const WRITE_10: u8 = 0x2a;
    /// VERIFY(10).
    pub const VERIFY_10: u8 = 0x2f;
    /// SYNCHRONIZE CACHE(10).
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    /// MODE SENSE(10).
    pub const MODE_SENSE_10: u8 = 0x5a;
    /// READ(16).
    pub const READ_16: u8 = 0x88;
    /// WRITE(16).
    pub const WRITE_16: u8 = 0x8a;
    /// SYNCHRONIZE CACHE(16).
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    /// SERVICE ACTION IN(16); service action 0x10 is READ CAPACITY(16).
    pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
    /// REPORT LUNS.
    pub const REPORT_LUNS: u8 = 0xa0;
}

/// READ CAPACITY(16)'s service action.
pub const SA_READ_CAPACITY_16: u8 = 0x10;

/// Sense data: key, additional sense code and qualifier.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct Sense {
    /// Sense key.
    pub key: u8,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
}

impl Sense {
    /// NO SENSE: nothing to report.
    pub const NONE: Sense = Sense::new(0x00, 0x00, 0x00);
    /// NOT READY, MEDIUM NOT PRESENT.
    pub const MEDIUM_NOT_PRESENT: Sense = Sense::new(0x02, 0x3a, 0x00);
    /// MEDIUM ERROR, UNRECOVERED READ ERROR.
    pub const READ_ERROR: Sense = Sense::new(0x03, 0x11, 0x00);
    /// MEDIUM ERROR, WRITE ERROR.
    pub const WRITE_ERROR: Sense = Sense::new(0x03, 0x0c, 0x00);
    /// ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE.
    pub const INVALID_COMMAND: Sense = Sense::new(0x05, 0x20, 0x00);
    /// ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE.
    pub const LBA_OUT_OF_RANGE: Sense = Sense::new(0x05, 0x21, 0x00);
    /// ILLEGAL REQUEST, INVALID FIELD IN CDB.
    pub const INVALID_FIELD_IN_CDB: Sense = Sense::new(0x05, 0x24, 0x00);
    /// ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED.
    pub const LUN_NOT_SUPPORTED: Sense = Sense::new(0x05, 0x25, 0x00);
    /// ILLEGAL REQUEST, SAVING PARAMETERS NOT SUPPORTED.
    pub const SAVING_NOT_SUPPORTED: Sense = Sense::new(0x05, 0x39, 0x00);
    /// ILLEGAL REQUEST, MEDIUM REMOVAL PREVENTED.
    pub const REMOVAL_PREVENTED: Sense = Sense::new(0x05, 0x53, 0x02);
    /// DATA PROTECT, WRITE PROTECTED.
    pub const WRITE_PROTECTED: Sense = Sense::new(0x07, 0x27, 0x00);

    /// A sense triple.
    pub const fn new(key: u8, asc: u8, ascq: u8) -> Sense {
        Sense { key, asc, ascq }
    }

    /// Fixed-format sense data (response code 0x70), 18 bytes.
    pub fn fixed(&self) -> [u8; 18] {
        let mut b = [0u8; 18];
        b[0] = 0x70;
        b[2] = self.key & 0x0f;
        b[7] = 10; // additional sense length
        b[12] = self.asc;
        b[13] = self.ascq;
        b
    }
}

/// A decoded command descriptor block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// TEST UNIT READY.
    TestUnitReady,
    /// REQUEST SENSE.
    RequestSense {
        /// Allocation length.
        alloc: u32,
    },
    /// INQUIRY (standard data, or the VPD page `page` when `evpd`).
    Inquiry {
        /// EVPD bit.
        evpd: bool,
        /// Page code.
        page: u8,
        /// Allocation length.
        alloc: u32,
    },
    /// MODE SENSE(6) or (10).
    ModeSense {
        /// The 10-byte form (8-byte header).
        ten: bool,
        /// Page control (0 current, 1 changeable, 2 default, 3 saved).
        control: u8,
        /// Page code.
        page: u8,
        /// Subpage code.
        subpage: u8,
        /// Allocation length.
        alloc: u32,
    },
    /// START STOP UNIT.
    StartStop {
        /// LOEJ: load or eject the medium.
        load_eject: bool,
        /// START.
        start: bool,
    },
    /// PREVENT ALLOW MEDIUM REMOVAL.
    PreventAllow {
        /// Removal prevented.
        prevent: bool,
    },
    /// READ FORMAT CAPACITIES.
    ReadFormatCapacities {
        /// Allocation length.
        alloc: u32,
    },
    /// READ CAPACITY(10).
    ReadCapacity10,
    /// READ CAPACITY(16).
    ReadCapacity16 {
        /// Allocation length.
        alloc: u32,
    },
    /// READ(6/10/16).
    Read {
        /// First logical block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
    },
    /// WRITE(6/10/16).
    Write {
        /// First logical block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
        /// Force unit access: on stable storage before the status.
        fua: bool,
    },
    /// VERIFY(10) without BYTCHK: the blocks exist.
    Verify {
        /// First logical block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
    },
    /// SYNCHRONIZE CACHE(10/16).
    SynchronizeCache,
    /// REPORT LUNS.
    ReportLuns {
        /// Allocation length.
        alloc: u32,
    },
}

/// The CDB length each supported operation code needs (SPC's group codes).
pub fn cdb_len(op: u8) -> usize {
    match op >> 5 {
        0 => 6,
        1 | 2 => 10,
        4 => 16,
        5 => 12,
        _ => 6,
    }
}

fn be16(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u32::from(u16::from_be_bytes([x, y])),
        _ => 0,
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[a, c, d, e]) => u32::from_be_bytes([a, c, d, e]),
        _ => 0,
    }
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        v.copy_from_slice(s);
    }
    u64::from_be_bytes(v)
}

fn byte(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

impl Command {
    /// Decode a CDB (the CBW's `CBWCB`, `bCBWCBLength` bytes of it).
    pub fn parse(cdb: &[u8]) -> Result<Command, Sense> {
        use opcode::*;
        let op = *cdb.first().ok_or(Sense::INVALID_COMMAND)?;
        let known = matches!(
            op,
            TEST_UNIT_READY
                | REQUEST_SENSE
                | READ_6
                | WRITE_6
                | INQUIRY
                | MODE_SENSE_6
                | START_STOP_UNIT
                | PREVENT_ALLOW_MEDIUM_REMOVAL
                | READ_FORMAT_CAPACITIES
                | READ_CAPACITY_10
                | READ_10
                | WRITE_10
                | VERIFY_10
                | SYNCHRONIZE_CACHE_10
                | MODE_SENSE_10
                | READ_16
                | WRITE_16
                | SYNCHRONIZE_CACHE_16
                | SERVICE_ACTION_IN_16
                | REPORT_LUNS
        );
        if !known {
            return Err(Sense::INVALID_COMMAND);
        }
        if cdb.len() < cdb_len(op) {
            return Err(Sense::INVALID_FIELD_IN_CDB);
        }
        let b = cdb;
        let cmd = match op {
            TEST_UNIT_READY => Command::TestUnitReady,
            REQUEST_SENSE => Command::RequestSense {
                alloc: u32::from(byte(b, 4)),
            },
            READ_6 | WRITE_6 => {
                let lba = u64::from(be32(b, 0) & 0x001f_ffff);
                // A transfer length of 0 means 256 blocks in the 6-byte forms.
                let blocks = match byte(b, 4) {
                    0 => 256,
                    n => u32::from(n),
                };
                if op == READ_6 {
                    Command::Read { lba, blocks }
                } else {
                    Command::Write {
                        lba,
                        blocks,
                        fua: false,
                    }
                }
            }
            INQUIRY => {
                let evpd = byte(b, 1) & 1 != 0;
                let page = byte(b, 2);
                if !evpd && page != 0 {
                    return Err(Sense::INVALID_FIELD_IN_CDB);
                }
                Command::Inquiry {
                    evpd,
                    page,
                    alloc: be16(b, 3),
                }
            }
            MODE_SENSE_6 | MODE_SENSE_10 => Command::ModeSense {
                ten: op == MODE_SENSE_10,
                control: byte(b, 2) >> 6,
                page: byte(b, 2) & 0x3f,
                subpage: byte(b, 3),
                alloc: if op == MODE_SENSE_10 {
                    be16(b, 7)
                } else {
                    u32::from(byte(b, 4))
                },
            },
            START_STOP_UNIT => {
                // Power conditions other than START_VALID (0) are not supported.
                if byte(b, 4) & 0xf0 != 0 {
                    return Err(Sense::INVALID_FIELD_IN_CDB);
                }
                Command::StartStop {
                    load_eject: byte(b, 4) & 2 != 0,
                    start: byte(b, 4) & 1 != 0,
                }
            }
            PREVENT_ALLOW_MEDIUM_REMOVAL => Command::PreventAllow {
                prevent: byte(b, 4) & 1 != 0,
            },
            READ_FORMAT_CAPACITIES => Command::ReadFormatCapacities { alloc: be16(b, 7) },
            READ_CAPACITY_10 => {
                // PMI (byte 8 bit 0) and a non-zero LBA are obsolete in SBC-3.
                if byte(b, 8) & 1 != 0 || be32(b, 2) != 0 {
                    return Err(Sense::INVALID_FIELD_IN_CDB);
                }
                Command::ReadCapacity10
            }
            READ_10 | WRITE_10 | VERIFY_10 => {
                // RDPROTECT/WRPROTECT/VRPROTECT (protection information) is not supported.
                if byte(b, 1) & 0xe0 != 0 {
                    return Err(Sense::INVALID_FIELD_IN_CDB);
                }
                let lba = u64::from(be32(b, 2));
                let blocks = be16(b, 7);
                match op {
                    READ_10 => Command::Read { lba, blocks },
                    WRITE_10 => Command::Write {
                        lba,
                        blocks,
                        fua: byte(b, 1) & 0x08 != 0,
                    },
                    _ => {
                        // BYTCHK: compare data from the host; not supported (as f_mass_storage).
                        if byte(b, 1) & 0x06 != 0 {
                            return Err(Sense::INVALID_FIELD_IN_CDB);
                        }
                        Command::Verify { lba, blocks }
                    }
                }
            }
            READ_16 | WRITE_16 => {
                if byte(b, 1) & 0xe0 != 0 {
                    return Err(Sense::INVALID_FIELD_IN_CDB);
                }
                let lba = be64(b, 2);
                let blocks = be32(b, 10);
                if op == READ_16 {
                    Command::Read { lba, blocks }
                } else {
                    Command::Write {
                        lba,
                        blocks,
                        fua: byte(b, 1) & 0x08 != 0,
                    }
                }
            }
            SYNCHRONIZE_CACHE_10 | SYNCHRONIZE_CACHE_16 => Command::SynchronizeCache,
            SERVICE_ACTION_IN_16 => {
                if byte(b, 1) & 0x1f != SA_READ_CAPACITY_16 {
                    return Err(Sense::INVALID_FIELD_IN_CDB);
                }
                Command::ReadCapacity16 { alloc: be32(b, 10) }
            }
            _ => Command::ReportLuns { alloc: be32(b, 6) },
        };
        Ok(cmd)
    }
}

/// What the transport does for a command: the device's intention (BOT's Dn, Di, Do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// No data; the command passed.
    Done,
    /// No data; the command failed with this sense (recorded on the LUN).
    Fail(Sense),
    /// Send these bytes (Di); the command passed.
    Reply(Vec<u8>),
    /// Read `len` bytes from the image at `offset` and send them (Di).
    Read {
        /// Byte offset in the image.
        offset: u64,
        /// Bytes.
        len: u64,
    },
    /// Receive `len` bytes and write them at `offset` (Do); `fua`: fdatasync before the CSW.
    Write {
        /// Byte offset in the image.
        offset: u64,
        /// Bytes.
        len: u64,
        /// Force unit access.
        fua: bool,
    },
    /// Flush the image to stable storage (fdatasync); no data.
    Sync,
}

/// Identification strings of the device's LUNs (INQUIRY).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// T10 vendor identification (8 bytes, space padded).
    pub vendor: [u8; 8],
    /// Product identification (16 bytes).
    pub product: [u8; 16],
    /// Product revision level (4 bytes).
    pub revision: [u8; 4],
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            vendor: *b"usbfn   ",
            product: *b"Mass Storage    ",
            revision: *b"0100",
        }
    }
}

/// One logical unit's SCSI state.
#[derive(Clone, Debug)]
pub struct Lun {
    /// Logical blocks of the image.
    pub blocks: u64,
    /// Writes answer DATA PROTECT.
    pub read_only: bool,
    /// The RMB bit; START STOP UNIT may eject.
    pub removable: bool,
    /// The unit serial number (VPD page 0x80).
    pub serial: String,
    /// Medium present (a removable unit can be ejected).
    pub loaded: bool,
    /// PREVENT ALLOW MEDIUM REMOVAL's state.
    pub prevent: bool,
    /// Sense of the last failed command, returned (and cleared) by REQUEST SENSE.
    pub sense: Sense,
}

impl Lun {
    /// A loaded unit of `blocks` blocks.
    pub fn new(blocks: u64, read_only: bool, removable: bool, serial: String) -> Lun {
        Lun {
            blocks,
            read_only,
            removable,
            serial,
            loaded: true,
            prevent: false,
            sense: Sense::NONE,
        }
    }

    /// Execute `cmd` as far as it does not need the image; block I/O is returned as an
    /// [`Action`] for the transport. `luns` is the device's LUN count (REPORT LUNS).
    pub fn execute(&mut self, cmd: &Command, id: &Identity, luns: u8) -> Action {
        let action = self.decide(cmd, id, luns);
        match &action {
            Action::Fail(sense) => self.sense = *sense,
            _ if !matches!(cmd, Command::RequestSense { .. }) => self.sense = Sense::NONE,
            _ => {}
        }
        action
    }

    fn decide(&mut self, cmd: &Command, id: &Identity, luns: u8) -> Action {
        let needs_medium = matches!(
            cmd,
            Command::TestUnitReady
                | Command::ReadCapacity10
                | Command::ReadCapacity16 { .. }
                | Command::Read { .. }
                | Command::Write { .. }
                | Command::Verify { .. }
                | Command::SynchronizeCache
        );
        if needs_medium && !self.loaded {
            return Action::Fail(Sense::MEDIUM_NOT_PRESENT);
        }
        match *cmd {
            Command::TestUnitReady => Action::Done,
            Command::RequestSense { alloc } => {
                let sense = std::mem::take(&mut self.sense);
                Action::Reply(truncate(sense.fixed().to_vec(), alloc))
            }
            Command::Inquiry { evpd, page, alloc } => {
                match inquiry(evpd, page, id, self.removable, &self.serial) {
                    Some(data) => Action::Reply(truncate(data, alloc)),
                    None => Action::Fail(Sense::INVALID_FIELD_IN_CDB),
                }
            }
            Command::ModeSense {
                ten,
                control,
                page,
                subpage,
                alloc,
            } => {
                if control == 3 {
                    return Action::Fail(Sense::SAVING_NOT_SUPPORTED);
                }
                match mode_sense(ten, control, page, subpage, self.read_only) {
                    Some(data) => Action::Reply(truncate(data, alloc)),
                    None => Action::Fail(Sense::INVALID_FIELD_IN_CDB),
                }
            }
            Command::StartStop { load_eject, start } => {
                if !self.removable || !load_eject {
                    return Action::Done;
                }
                if start {
                    self.loaded = true;
                } else if self.prevent {
                    return Action::Fail(Sense::REMOVAL_PREVENTED);
                } else {
                    self.loaded = false;
                }
                Action::Done
            }
            Command::PreventAllow { prevent } => {
                self.prevent = prevent;
                Action::Done
            }
            Command::ReadFormatCapacities { alloc } => {
                let mut d = vec![0, 0, 0, 8];
                // A block count beyond 32 bits reads 0xffffffff, as READ CAPACITY(10) reports it (the host then uses READ CAPACITY(16)).
                d.extend_from_slice(&u32::try_from(self.blocks).unwrap_or(u32::MAX).to_be_bytes());
                // Descriptor type 2: formatted media; 3: no media present.
                d.push(if self.loaded { 0x02 } else { 0x03 });
                d.extend_from_slice(&BLOCK_SIZE.to_be_bytes()[1..]);
                Action::Reply(truncate(d, alloc))
            }
            Command::ReadCapacity10 => {
                let last = self.blocks.saturating_sub(1);
                let mut d = u32::try_from(last)
                    // SCSI's own rule: a last LBA beyond 32 bits reads 0xffffffff, telling the host to use READ CAPACITY(16).
                    .unwrap_or(u32::MAX)
                    .to_be_bytes()
                    .to_vec();
                d.extend_from_slice(&BLOCK_SIZE.to_be_bytes());
                Action::Reply(d)
            }
            Command::ReadCapacity16 { alloc } => {
                let mut d = vec![0u8; 32];
                d[..8].copy_from_slice(&self.blocks.saturating_sub(1).to_be_bytes());
                d[8..12].copy_from_slice(&BLOCK_SIZE.to_be_bytes());
                Action::Reply(truncate(d, alloc))
            }
            Command::Read { lba, blocks } => match self.range(lba, blocks) {
                Ok((offset, len)) => Action::Read { offset, len },
                Err(s) => Action::Fail(s),
            },
            Command::Write { lba, blocks, fua } => {
                if self.read_only {
                    return Action::Fail(Sense::WRITE_PROTECTED);
                }
                match self.range(lba, blocks) {
                    Ok((offset, len)) => Action::Write { offset, len, fua },
                    Err(s) => Action::Fail(s),
                }
            }
            Command::Verify { lba, blocks } => match self.range(lba, blocks) {
                Ok(_) => Action::Done,
                Err(s) => Action::Fail(s),
            },
            Command::SynchronizeCache => {
                if self.read_only {
                    Action::Done
                } else {
                    Action::Sync
                }
            }
            Command::ReportLuns { alloc } => Action::Reply(truncate(report_luns(luns), alloc)),
        }
    }

    /// The byte range of `blocks` blocks at `lba`, or LBA OUT OF RANGE.
    fn range(&self, lba: u64, blocks: u32) -> Result<(u64, u64), Sense> {
        let end = lba
            .checked_add(u64::from(blocks))
            .filter(|e| *e <= self.blocks)
            .ok_or(Sense::LBA_OUT_OF_RANGE)?;
        let _ = end;
        Ok((lba * BLOCK, u64::from(blocks) * BLOCK))
    }
}

/// The answer for a LUN number the device does not have (SPC: INQUIRY answers with
/// peripheral qualifier 3, REQUEST SENSE with LOGICAL UNIT NOT SUPPORTED, everything else
/// fails with it).
pub fn absent_lun(cmd: &Command, id: &Identity, luns: u8) -> Action {
    match *cmd {
        Command::Inquiry {
            evpd: false, alloc, ..
        } => {
            let mut d = inquiry(false, 0, id, false, "").unwrap_or_default();
            if let Some(b) = d.first_mut() {
                *b = 0x7f;
            }
            Action::Reply(truncate(d, alloc))
        }
        Command::RequestSense { alloc } => {
            Action::Reply(truncate(Sense::LUN_NOT_SUPPORTED.fixed().to_vec(), alloc))
        }
        Command::ReportLuns { alloc } => Action::Reply(truncate(report_luns(luns), alloc)),
        _ => Action::Fail(Sense::LUN_NOT_SUPPORTED),
    }
}

fn truncate(mut d: Vec<u8>, alloc: u32) -> Vec<u8> {
    // Saturating is right: an allocation length beyond usize truncates nothing.
    d.truncate(usize::try_from(alloc).unwrap_or(usize::MAX));
    d
}

fn report_luns(luns: u8) -> Vec<u8> {
    let mut d = (u32::from(luns) * 8).to_be_bytes().to_vec();
    d.extend_from_slice(&[0; 4]);
    for lun in 0..luns {
        d.extend_from_slice(&[0, lun, 0, 0, 0, 0, 0, 0]);
    }
    d
}

/// INQUIRY data: standard (36 bytes) or a VPD page (0x00, 0x80, 0x83); `None` for other
/// pages.
fn inquiry(evpd: bool, page: u8, id: &Identity, removable: bool, serial: &str) -> Option<Vec<u8>> {
    if !evpd {
        let mut d = vec![0u8; 36];
        d[0] = 0x00; // peripheral qualifier 0, direct-access block device
        d[1] = if removable { 0x80 } else { 0 };
        d[2] = 0x04; // SPC-2
        d[3] = 0x02; // response data format 2
        d[4] = 31; // additional length
        d[8..16].copy_from_slice(&id.vendor);
        d[16..32].copy_from_slice(&id.product);
        d[32..36].copy_from_slice(&id.revision);
        return Some(d);
    }
    let body: Vec<u8> = match page {
        0x00 => vec![0x00, 0x80, 0x83],
        0x80 => serial
            .bytes()
            .filter(u8::is_ascii_graphic)
            .take(64)
            .collect(),
        0x83 => {
            // One T10 vendor ID designator: vendor + product + serial (ASCII).
            let mut ident = id.vendor.to_vec();
            ident.extend_from_slice(&id.product);
            ident.extend(serial.bytes().filter(u8::is_ascii_graphic).take(64));
            let mut d = vec![0x02, 0x01, 0x00, u8::try_from(ident.len()).unwrap_or(0)];
            d.extend_from_slice(&ident);
            d
        }
        _ => return None,
    };
    let mut d = vec![0x00, page];
    d.extend_from_slice(&u16::try_from(body.len()).unwrap_or(0).to_be_bytes());
    d.extend_from_slice(&body);
    Some(d)
}

/// MODE SENSE data: the header and the caching page (0x08, WCE set: writes land in the
/// host's page cache of the image until SYNCHRONIZE CACHE or FUA) for page 0x08 or 0x3f;
/// `None` for other pages.
fn mode_sense(ten: bool, control: u8, page: u8, subpage: u8, read_only: bool) -> Option<Vec<u8>> {
    let pages: Vec<u8> = match (page, subpage) {
        (0x08, 0) | (0x3f, 0) | (0x3f, 0xff) => {
            let mut p = vec![0u8; 20];
            p[0] = 0x08;
            p[1] = 18;
            // Changeable values (page control 1): nothing can be changed.
            if control != 1 {
                p[2] = 0x04; // WCE
            }
            p
        }
        _ => return None,
    };
    let wp = if read_only { 0x80 } else { 0 };
    let mut d = if ten {
        let len = u16::try_from(pages.len() + 6).unwrap_or(0).to_be_bytes();
        vec![len[0], len[1], 0, wp, 0, 0, 0, 0]
    } else {
        vec![u8::try_from(pages.len() + 3).unwrap_or(0), 0, wp, 0]
    };
    d.extend_from_slice(&pages);
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lun() -> Lun {
        Lun::new(2048, false, false, "SERIAL1".into())
    }

    fn run(l: &mut Lun, cdb: &[u8]) -> Action {
        match Command::parse(cdb) {
            Ok(c) => l.execute(&c, &Identity::default(), 1),
            Err(s) => {
                l.sense = s;
                Action::Fail(s)
            }
        }
    }

    #[test]
    fn unknown_command_is_illegal_request_invalid_opcode() {
        let mut l = lun();
        assert_eq!(
            run(&mut l, &[0xff, 0, 0, 0, 0, 0]),
            Action::Fail(Sense::INVALID_COMMAND)
        );
        // MODE SELECT(6) is not supported either.
        assert_eq!(
            run(&mut l, &[0x15, 0, 0, 0, 0, 0]),
            Action::Fail(Sense::INVALID_COMMAND)
        );
        let Action::Reply(sense) = run(&mut l, &[0x03, 0, 0, 0, 18, 0]) else {
            panic!("request sense replies");
        };
        assert_eq!(sense.len(), 18);
        assert_eq!(
            (sense[0], sense[2], sense[12], sense[13]),
            (0x70, 0x05, 0x20, 0x00)
        );
        let Action::Reply(sense) = run(&mut l, &[0x03, 0, 0, 0, 18, 0]) else {
            panic!("request sense replies");
        };
        assert_eq!(sense[2], 0, "REQUEST SENSE clears the sense");
    }

    #[test]
    fn inquiry_standard_and_vpd() {
        let mut l = Lun::new(8, false, true, "ABC".into());
        let Action::Reply(d) = run(&mut l, &[0x12, 0, 0, 0, 36, 0]) else {
            panic!()
        };
        assert_eq!(&d[..5], &[0x00, 0x80, 0x04, 0x02, 31]);
        assert_eq!(&d[8..16], b"usbfn   ");
        let Action::Reply(d) = run(&mut l, &[0x12, 1, 0x80, 0, 255, 0]) else {
            panic!()
        };
        assert_eq!(d, [0x00, 0x80, 0, 3, b'A', b'B', b'C']);
        let Action::Reply(d) = run(&mut l, &[0x12, 1, 0x00, 0, 4, 0]) else {
            panic!()
        };
        assert_eq!(d, [0, 0, 0, 3], "truncated to the allocation length");
        assert_eq!(
            run(&mut l, &[0x12, 1, 0x99, 0, 255, 0]),
            Action::Fail(Sense::INVALID_FIELD_IN_CDB)
        );
        assert_eq!(
            run(&mut l, &[0x12, 0, 0x80, 0, 255, 0]),
            Action::Fail(Sense::INVALID_FIELD_IN_CDB),
            "a page code without EVPD"
        );
    }

    #[test]
    fn capacities() {
        let mut l = lun();
        assert_eq!(
            run(&mut l, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Action::Reply(vec![0, 0, 0x07, 0xff, 0, 0, 2, 0])
        );
        let mut cdb = [0u8; 16];
        cdb[0] = 0x9e;
        cdb[1] = 0x10;
        cdb[13] = 32;
        let Action::Reply(d) = run(&mut l, &cdb) else {
            panic!()
        };
        assert_eq!(&d[..12], &[0, 0, 0, 0, 0, 0, 0x07, 0xff, 0, 0, 2, 0]);
        let Action::Reply(d) = run(&mut l, &[0x23, 0, 0, 0, 0, 0, 0, 0, 252, 0]) else {
            panic!()
        };
        assert_eq!(d, [0, 0, 0, 8, 0, 0, 8, 0, 2, 0, 2, 0]);
        cdb[1] = 0x11;
        assert_eq!(run(&mut l, &cdb), Action::Fail(Sense::INVALID_FIELD_IN_CDB));
    }

    #[test]
    fn reads_and_writes_in_range_only() {
        let mut l = lun();
        assert_eq!(
            run(&mut l, &[0x28, 0, 0, 0, 0, 2, 0, 0, 4, 0]),
            Action::Read {
                offset: 1024,
                len: 2048
            }
        );
        assert_eq!(
            run(&mut l, &[0x2a, 0x08, 0, 0, 0x07, 0xff, 0, 0, 1, 0]),
            Action::Write {
                offset: 2047 * 512,
                len: 512,
                fua: true
            }
        );
        assert_eq!(
            run(&mut l, &[0x28, 0, 0, 0, 0x07, 0xff, 0, 0, 2, 0]),
            Action::Fail(Sense::LBA_OUT_OF_RANGE)
        );
        let mut r16 = [0u8; 16];
        r16[0] = 0x88;
        r16[2..10].copy_from_slice(&u64::MAX.to_be_bytes());
        r16[13] = 1;
        assert_eq!(
            run(&mut l, &r16),
            Action::Fail(Sense::LBA_OUT_OF_RANGE),
            "no overflow"
        );
        assert_eq!(
            run(&mut l, &[0x08, 0, 0, 1, 0, 0]),
            Action::Read {
                offset: 512,
                len: 256 * 512
            },
            "READ(6) length 0 is 256 blocks"
        );
        assert_eq!(
            run(&mut l, &[0x28, 0, 0]),
            Action::Fail(Sense::INVALID_FIELD_IN_CDB),
            "a short CDB"
        );
    }

    #[test]
    fn read_only_refuses_writes_with_data_protect() {
        let mut l = Lun::new(16, true, false, String::new());
        assert_eq!(
            run(&mut l, &[0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
            Action::Fail(Sense::WRITE_PROTECTED)
        );
        assert_eq!(Sense::WRITE_PROTECTED.fixed()[2], 0x07);
        assert_eq!(Sense::WRITE_PROTECTED.fixed()[12], 0x27);
        let Action::Reply(d) = run(&mut l, &[0x1a, 0, 0x3f, 0, 192, 0]) else {
            panic!()
        };
        assert_eq!(d[2] & 0x80, 0x80, "WP in the mode parameter header");
    }

    #[test]
    fn mode_sense_caching_page() {
        let mut l = lun();
        let Action::Reply(d) = run(&mut l, &[0x1a, 0, 0x08, 0, 192, 0]) else {
            panic!()
        };
        assert_eq!(d.len(), 24);
        assert_eq!(&d[..6], &[23, 0, 0, 0, 0x08, 18]);
        assert_eq!(d[6] & 0x04, 0x04, "WCE");
        let Action::Reply(d) = run(&mut l, &[0x5a, 0, 0x3f, 0, 0, 0, 0, 0, 255, 0]) else {
            panic!()
        };
        assert_eq!(&d[..2], &[0, 26]);
        assert_eq!(
            run(&mut l, &[0x1a, 0, 0x1c, 0, 192, 0]),
            Action::Fail(Sense::INVALID_FIELD_IN_CDB)
        );
        assert_eq!(
            run(&mut l, &[0x1a, 0, 0xc8, 0, 192, 0]),
            Action::Fail(Sense::SAVING_NOT_SUPPORTED)
        );
    }

    #[test]
    fn removable_eject_and_prevent() {
        let mut l = Lun::new(16, false, true, String::new());
        assert_eq!(run(&mut l, &[0x1e, 0, 0, 0, 1, 0]), Action::Done);
        assert_eq!(
            run(&mut l, &[0x1b, 0, 0, 0, 0x02, 0]),
            Action::Fail(Sense::REMOVAL_PREVENTED)
        );
        assert_eq!(run(&mut l, &[0x1e, 0, 0, 0, 0, 0]), Action::Done);
        assert_eq!(run(&mut l, &[0x1b, 0, 0, 0, 0x02, 0]), Action::Done);
        assert_eq!(
            run(&mut l, &[0x00, 0, 0, 0, 0, 0]),
            Action::Fail(Sense::MEDIUM_NOT_PRESENT)
        );
        assert_eq!(run(&mut l, &[0x1b, 0, 0, 0, 0x03, 0]), Action::Done);
        assert_eq!(run(&mut l, &[0x00, 0, 0, 0, 0, 0]), Action::Done);
    }

    #[test]
    fn absent_lun_answers() {
        let id = Identity::default();
        let Action::Reply(d) = absent_lun(
            &Command::Inquiry {
                evpd: false,
                page: 0,
                alloc: 36,
            },
            &id,
            1,
        ) else {
            panic!()
        };
        assert_eq!(d[0], 0x7f);
        assert_eq!(
            absent_lun(&Command::TestUnitReady, &id, 1),
            Action::Fail(Sense::LUN_NOT_SUPPORTED)
        );
        assert_eq!(
            absent_lun(&Command::ReportLuns { alloc: 64 }, &id, 2),
            Action::Reply(vec![
                0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0
            ])
        );
    }
}
