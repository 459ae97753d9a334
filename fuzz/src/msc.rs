//! The mass-storage decoders: CBWs (`bot::Cbw`), SCSI CDBs (`scsi::Command`) run against a
//! LUN's state, and BOT's case table (`bot::Plan`).
//!
//! Input: one byte of LUN flags, then 31-byte records, each a CBW as a host sends it. Checked
//! beyond "no panic": a valid CBW re-encodes to its own bytes; block I/O an action asks for
//! stays inside the medium; replies never exceed the CDB's allocation length (or a standard
//! size); a plan never moves more than the host expects or the device intends, and a phase
//! error or a halt is decided exactly when BOT says so.

use usbfn::functions::msc::bot::{CBW_LEN, Cbw, Expect, Intent, Plan};
use usbfn::functions::msc::scsi::{Action, BLOCK, Command, Identity, Lun, absent_lun};

/// Blocks of the fuzzed medium.
const BLOCKS: u64 = 4096;

/// Run one input.
pub fn run(data: &[u8]) {
    let Some((&flags, records)) = data.split_first() else {
        return;
    };
    let mut lun = Lun::new(BLOCKS, flags & 1 != 0, flags & 2 != 0, "FUZZ".into());
    let id = Identity::default();
    for record in records.chunks(CBW_LEN) {
        let Ok(cbw) = Cbw::parse(record) else {
            continue;
        };
        let n = 15 + cbw.cb.len();
        let mut expected = record[..n].to_vec();
        if cbw.expect.is_empty() {
            // With no data the direction bit means nothing; the encoder writes 0.
            expected[12] = 0;
        }
        assert_eq!(
            &cbw.emit()[..n],
            &expected[..],
            "a CBW re-encodes to itself"
        );
        let parsed = Command::parse(&cbw.cb);
        let action = match (&parsed, cbw.lun) {
            (Ok(cmd), 0) => lun.execute(cmd, &id, 1),
            (Ok(cmd), _) => absent_lun(cmd, &id, 1),
            (Err(sense), _) => Action::Fail(*sense),
        };
        let intent = match &action {
            Action::Reply(d) => {
                let limit = match &parsed {
                    Ok(Command::ReadCapacity10) => 8,
                    Ok(
                        Command::RequestSense { alloc }
                        | Command::Inquiry { alloc, .. }
                        | Command::ModeSense { alloc, .. }
                        | Command::ReadFormatCapacities { alloc }
                        | Command::ReadCapacity16 { alloc }
                        | Command::ReportLuns { alloc },
                    ) => *alloc as usize,
                    other => panic!("a reply to {other:?}"),
                };
                assert!(
                    d.len() <= limit,
                    "reply of {} bytes, limit {limit}",
                    d.len()
                );
                Intent::In(d.len() as u64)
            }
            Action::Read { offset, len } => {
                assert!(offset + len <= BLOCKS * BLOCK, "read past the medium");
                assert_eq!(offset % BLOCK, 0);
                Intent::In(*len)
            }
            Action::Write { offset, len, .. } => {
                assert!(!lun.read_only, "a write on a read-only LUN");
                assert!(offset + len <= BLOCKS * BLOCK, "write past the medium");
                Intent::Out(*len)
            }
            Action::Done | Action::Fail(_) | Action::Sync => Intent::None,
        };
        let intent = match intent {
            Intent::In(0) | Intent::Out(0) => Intent::None,
            i => i,
        };
        let plan = Plan::new(cbw.expect, intent);
        assert!((1..=13).contains(&plan.case));
        assert!(
            plan.transfer <= cbw.expect.len(),
            "more than the host expects"
        );
        let d = match intent {
            Intent::None => 0,
            Intent::In(d) | Intent::Out(d) => d,
        };
        assert!(
            u64::from(plan.transfer) <= d,
            "more than the device intends"
        );
        let directions_agree = matches!(
            (cbw.expect, intent),
            (Expect::None, Intent::None)
                | (Expect::In(_), Intent::In(_) | Intent::None)
                | (Expect::Out(_), Intent::Out(_) | Intent::None)
        );
        let phase = !directions_agree || u64::from(cbw.expect.len()) < d;
        assert_eq!(
            plan.phase_error, phase,
            "phase error as BOT 6.7 says: {plan:?}"
        );
        let short =
            !cbw.expect.is_empty() && u64::from(plan.transfer) < u64::from(cbw.expect.len());
        assert_eq!(
            plan.stall,
            short && !matches!(plan.case, 7 | 13),
            "{plan:?}"
        );
    }
}
