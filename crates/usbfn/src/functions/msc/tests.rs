//! The mass-storage function against the in-process host, driven the way Linux's
//! usb-storage drives a device (CBW, data, CSW; clear a halt and retry the CSW; reset
//! recovery after an invalid CBW or a phase error).

#![allow(clippy::cast_possible_truncation)] // test patterns wrap bytes on purpose

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use usbfn_core::CompletionStatus;
use usbfn_wire::{Direction, FeatureSelector, Recipient, RequestType, SetupPacket};

use super::bot::{Cbw, Csw, Expect, Status};
use crate::functions::{Function, StartError, device_config, start_all};
use crate::host::Host;
use crate::{BusSpeed, Controller};

const OUT: u8 = 0x01;
/// Endpoint number of bulk IN (address 0x81).
const IN: u8 = 1;
const IN_ADDRESS: u8 = 0x81;

struct Rig {
    host: Host,
    _controller: Controller,
    images: Vec<PathBuf>,
    tag: u32,
}

impl Drop for Rig {
    fn drop(&mut self) {
        for p in &self.images {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn image(name: &str, len: usize, fill: impl Fn(usize) -> u8) -> PathBuf {
    let path = std::env::temp_dir().join(format!("usbfn-msc-{}-{name}.img", std::process::id()));
    let data: Vec<u8> = (0..len).map(fill).collect();
    std::fs::write(&path, data).expect("image written");
    path
}

/// Images `(name, bytes)` behind `msc,<flags per image>`.
async fn rig(images: &[(&str, usize, &str)]) -> Rig {
    let mut spec = String::from("msc");
    let mut paths = Vec::new();
    for (name, len, flags) in images {
        let p = image(name, *len, |i| (i / 512) as u8);
        spec.push_str(&format!(",image={}{flags}", p.display()));
        paths.push(p);
    }
    let functions = [Function::parse(&spec).expect("valid options")];
    let controller = Controller::new(&device_config(&functions)).expect("device");
    start_all(&functions, |name| {
        controller
            .open(name)
            .map_err(|e| StartError::Invalid(e.to_string()))
    })
    .expect("starts");
    let mut ready = controller.ready_watch();
    ready.wait_for(|r| *r).await.expect("ready");
    let host = Host::connect(&controller, BusSpeed::High).expect("connect");
    host.set_configuration(1).await.expect("configured");
    Rig {
        host,
        _controller: controller,
        images: paths,
        tag: 0,
    }
}

fn clear_halt(ep: u8) -> SetupPacket {
    SetupPacket::clear_feature(
        Recipient::Endpoint,
        FeatureSelector::ENDPOINT_HALT,
        u16::from(ep),
    )
}

fn class(direction: Direction, request: u8, len: u16) -> SetupPacket {
    SetupPacket::new(
        direction,
        RequestType::Class,
        Recipient::Interface,
        request,
        0,
        0,
        len,
    )
}

/// What a command did: its data (IN), the data stage's status, the CSW.
#[derive(Debug)]
struct Done {
    data: Bytes,
    data_status: Option<CompletionStatus>,
    csw: Csw,
}

impl Rig {
    async fn reset_recovery(&self) {
        self.host
            .control(class(Direction::Out, 0xff, 0), Bytes::new())
            .await
            .expect("reset");
        for ep in [IN_ADDRESS, OUT] {
            self.host
                .control(clear_halt(ep), Bytes::new())
                .await
                .expect("clear halt");
        }
    }

    /// One command as usb-storage runs it.
    async fn command(&mut self, lun: u8, expect: Expect, cb: &[u8], out: Option<Bytes>) -> Done {
        self.tag += 1;
        let cbw = Cbw {
            tag: self.tag,
            expect,
            lun,
            cb: cb.to_vec(),
        };
        let c = self
            .host
            .bulk_out(OUT, Bytes::copy_from_slice(&cbw.emit()))
            .await
            .expect("CBW sent");
        assert_eq!(c.status, CompletionStatus::Success, "CBW accepted");
        let (mut data, mut data_status) = (Bytes::new(), None);
        match expect {
            Expect::None => {}
            Expect::In(n) => {
                let c = self.host.bulk_in(IN, n as usize).await.expect("data in");
                data_status = Some(c.status);
                data = c.data;
                if c.status == CompletionStatus::Stall {
                    self.host
                        .control(clear_halt(IN_ADDRESS), Bytes::new())
                        .await
                        .expect("clear");
                }
            }
            Expect::Out(n) => {
                let payload = out.unwrap_or_else(|| Bytes::from(vec![0u8; n as usize]));
                let c = self.host.bulk_out(OUT, payload).await.expect("data out");
                data_status = Some(c.status);
                if c.status == CompletionStatus::Stall {
                    self.host
                        .control(clear_halt(OUT), Bytes::new())
                        .await
                        .expect("clear");
                }
            }
        }
        let mut c = self.host.bulk_in(IN, 13).await.expect("CSW");
        if c.status == CompletionStatus::Stall {
            self.host
                .control(clear_halt(IN_ADDRESS), Bytes::new())
                .await
                .expect("clear");
            c = self.host.bulk_in(IN, 13).await.expect("CSW");
        }
        assert_eq!(c.status, CompletionStatus::Success, "CSW read");
        let csw = Csw::parse(&c.data).expect("a CSW");
        assert_eq!(csw.tag, self.tag, "the tag is echoed");
        Done {
            data,
            data_status,
            csw,
        }
    }

    async fn sense(&mut self, lun: u8) -> (u8, u8, u8) {
        let d = self
            .command(lun, Expect::In(18), &[0x03, 0, 0, 0, 18, 0], None)
            .await;
        assert_eq!(d.csw.status, Status::Passed);
        (d.data[2], d.data[12], d.data[13])
    }
}

fn rw10(op: u8, lba: u32, blocks: u16, flags: u8) -> Vec<u8> {
    let mut cb = vec![op, flags];
    cb.extend_from_slice(&lba.to_be_bytes());
    cb.push(0);
    cb.extend_from_slice(&blocks.to_be_bytes());
    cb.push(0);
    cb
}

#[tokio::test]
async fn enumeration_commands() {
    let mut r = rig(&[("enum", 1 << 20, "")]).await;
    let max_lun = r
        .host
        .control(class(Direction::In, 0xfe, 1), Bytes::new())
        .await
        .expect("GET_MAX_LUN");
    assert_eq!(&max_lun[..], &[0]);
    let d = r
        .command(0, Expect::In(36), &[0x12, 0, 0, 0, 36, 0], None)
        .await;
    assert_eq!((d.csw.status, d.csw.residue), (Status::Passed, 0));
    assert_eq!(&d.data[..4], &[0, 0, 4, 2]);
    let d = r.command(0, Expect::None, &[0; 6], None).await;
    assert_eq!(d.csw.status, Status::Passed, "TEST UNIT READY");
    let d = r
        .command(0, Expect::In(8), &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], None)
        .await;
    assert_eq!(
        &d.data[..],
        &[0, 0, 0x07, 0xff, 0, 0, 2, 0],
        "2048 blocks of 512"
    );
    // MODE SENSE(6) with a 192-byte allocation: case 5 (Hi > Di), short data then a halt.
    let d = r
        .command(0, Expect::In(192), &[0x1a, 0, 0x3f, 0, 192, 0], None)
        .await;
    assert_eq!(d.data.len(), 24);
    assert_eq!((d.csw.status, d.csw.residue), (Status::Passed, 192 - 24));
}

#[tokio::test]
async fn write_then_read_back_streams_and_lands_in_the_image() {
    let mut r = rig(&[("rw", 4 << 20, "")]).await;
    // 1 MiB + 512: more than the window, not a multiple of a chunk.
    let blocks: u16 = 2049;
    let len = usize::from(blocks) * 512;
    let payload: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
    let d = r
        .command(
            0,
            Expect::Out(len as u32),
            &rw10(0x2a, 100, blocks, 0x08),
            Some(Bytes::from(payload.clone())),
        )
        .await;
    assert_eq!(
        (d.csw.status, d.csw.residue),
        (Status::Passed, 0),
        "WRITE(10) FUA"
    );
    let d = r
        .command(0, Expect::In(len as u32), &rw10(0x28, 100, blocks, 0), None)
        .await;
    assert_eq!((d.csw.status, d.csw.residue), (Status::Passed, 0));
    assert!(d.data[..] == payload[..], "read back byte-exact");
    let file = std::fs::read(&r.images[0]).expect("image");
    assert!(
        file[100 * 512..100 * 512 + len] == payload[..],
        "the image holds the bytes"
    );
    assert_eq!(file[99 * 512], 99, "the block before is untouched");
    let d = r
        .command(0, Expect::None, &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], None)
        .await;
    assert_eq!(d.csw.status, Status::Passed, "SYNCHRONIZE CACHE");
}

#[tokio::test]
async fn unknown_commands_fail_with_invalid_opcode() {
    let mut r = rig(&[("unknown", 64 << 10, "")]).await;
    let d = r
        .command(0, Expect::None, &[0xd7, 0, 0, 0, 0, 0], None)
        .await;
    assert_eq!(d.csw.status, Status::Failed);
    assert_eq!(r.sense(0).await, (0x05, 0x20, 0x00));
    // With an IN data stage expected: case 4, the IN endpoint halts, residue = everything.
    let d = r
        .command(0, Expect::In(64), &[0x15, 0, 0, 0, 64, 0], None)
        .await;
    assert_eq!(d.data_status, Some(CompletionStatus::Stall));
    assert_eq!((d.csw.status, d.csw.residue), (Status::Failed, 64));
    assert_eq!(r.sense(0).await, (0x05, 0x20, 0x00));
    assert_eq!(
        r.sense(0).await,
        (0, 0, 0),
        "cleared by the previous REQUEST SENSE"
    );
}

#[tokio::test]
async fn read_only_answers_writes_with_data_protect() {
    let mut r = rig(&[("ro", 64 << 10, ",ro")]).await;
    let before = std::fs::read(&r.images[0]).expect("image");
    let d = r
        .command(
            0,
            Expect::Out(512),
            &rw10(0x2a, 0, 1, 0),
            Some(Bytes::from(vec![0xaa; 512])),
        )
        .await;
    assert_eq!(
        d.data_status,
        Some(CompletionStatus::Stall),
        "case 9: OUT halts"
    );
    assert_eq!((d.csw.status, d.csw.residue), (Status::Failed, 512));
    assert_eq!(r.sense(0).await, (0x07, 0x27, 0x00));
    assert_eq!(std::fs::read(&r.images[0]).expect("image"), before);
    let d = r
        .command(0, Expect::In(4), &[0x1a, 0, 0x3f, 0, 4, 0], None)
        .await;
    assert_eq!(d.data[2] & 0x80, 0x80, "WP");
}

#[tokio::test]
async fn an_invalid_cbw_wedges_bulk_in_until_the_class_reset() {
    let mut r = rig(&[("invalid", 64 << 10, "")]).await;
    let c = r
        .host
        .bulk_out(OUT, Bytes::from(vec![0x55; 30]))
        .await
        .expect("sent");
    assert_eq!(
        c.status,
        CompletionStatus::Success,
        "the device took the packet"
    );
    let c = r.host.bulk_in(IN, 13).await.expect("in");
    assert_eq!(c.status, CompletionStatus::Stall, "IN halted");
    // As f_mass_storage: bulk-out takes data and drops it (a valid CBW too) until the reset.
    let cbw = Cbw {
        tag: 99,
        expect: Expect::In(36),
        lun: 0,
        cb: vec![0x12, 0, 0, 0, 36, 0],
    };
    let c = r
        .host
        .bulk_out(OUT, Bytes::copy_from_slice(&cbw.emit()))
        .await
        .expect("out");
    assert_eq!(c.status, CompletionStatus::Success, "OUT data is taken");
    // CLEAR_FEATURE(HALT) alone does not un-stall a wedged bulk-in, however often.
    for _ in 0..3 {
        r.host
            .control(clear_halt(IN_ADDRESS), Bytes::new())
            .await
            .expect("clear");
        let c = tokio::time::timeout(Duration::from_secs(2), r.host.bulk_in(IN, 36))
            .await
            .expect("the IN URB ends")
            .expect("in");
        assert_eq!(
            c.status,
            CompletionStatus::Stall,
            "still halted after CLEAR_FEATURE: the dropped CBW got no answer"
        );
    }
    // The Bulk-Only Mass Storage Reset ends the wedge (the host's CLEAR_FEATUREs follow).
    r.reset_recovery().await;
    let d = r.command(0, Expect::None, &[0; 6], None).await;
    assert_eq!(d.csw.status, Status::Passed, "works after reset recovery");
    // The reset alone clears the forced halt too, as f_mass_storage does.
    r.host
        .bulk_out(OUT, Bytes::from(vec![0; 5]))
        .await
        .expect("sent");
    r.host
        .control(class(Direction::Out, 0xff, 0), Bytes::new())
        .await
        .expect("reset");
    let d = r.command(0, Expect::None, &[0; 6], None).await;
    assert_eq!(
        d.csw.status,
        Status::Passed,
        "no CLEAR_FEATURE needed after the reset"
    );
}

#[tokio::test]
async fn a_cbw_not_meaningful_halts_both_endpoints_then_the_next_cbw_runs() {
    let mut r = rig(&[("meaningless", 64 << 10, "")]).await;
    let mut bad = Cbw {
        tag: 7,
        expect: Expect::None,
        lun: 0,
        cb: vec![0; 6],
    }
    .emit();
    bad[14] = 0x1f; // reserved bits of bCBWCBLength
    let c = r
        .host
        .bulk_out(OUT, Bytes::copy_from_slice(&bad))
        .await
        .expect("sent");
    assert_eq!(c.status, CompletionStatus::Success);
    let c = r.host.bulk_in(IN, 13).await.expect("in");
    assert_eq!(c.status, CompletionStatus::Stall, "IN halted");
    let c = r
        .host
        .bulk_out(OUT, Bytes::from(vec![0; 31]))
        .await
        .expect("out");
    assert_eq!(c.status, CompletionStatus::Stall, "OUT halted");
    for ep in [IN_ADDRESS, OUT] {
        r.host
            .control(clear_halt(ep), Bytes::new())
            .await
            .expect("clear");
    }
    let d = r.command(0, Expect::None, &[0; 6], None).await;
    assert_eq!(
        d.csw.status,
        Status::Passed,
        "the next CBW runs without a reset"
    );
}

#[tokio::test]
async fn phase_errors_and_residues() {
    let mut r = rig(&[("phase", 64 << 10, "")]).await;
    // Case 2: Hn < Di.
    let d = r
        .command(0, Expect::None, &[0x12, 0, 0, 0, 36, 0], None)
        .await;
    assert_eq!(d.csw.status, Status::PhaseError);
    r.reset_recovery().await;
    // Case 7: Hi < Di (two blocks, the host asks for one).
    let d = r
        .command(0, Expect::In(512), &rw10(0x28, 3, 2, 0), None)
        .await;
    assert_eq!(d.data.len(), 512);
    assert_eq!(d.data[0], 3);
    assert_eq!(d.csw.status, Status::PhaseError);
    r.reset_recovery().await;
    // Case 8: Hi <> Do.
    let d = r
        .command(0, Expect::In(512), &rw10(0x2a, 3, 1, 0), None)
        .await;
    assert_eq!(d.data_status, Some(CompletionStatus::Stall));
    assert_eq!(d.csw.status, Status::PhaseError);
    r.reset_recovery().await;
    // Case 11: Ho > Do: the device takes one block and halts OUT.
    let d = r
        .command(
            0,
            Expect::Out(1024),
            &rw10(0x2a, 5, 1, 0),
            Some(Bytes::from(vec![0xee; 1024])),
        )
        .await;
    assert_eq!((d.csw.status, d.csw.residue), (Status::Passed, 512));
    let file = std::fs::read(&r.images[0]).expect("image");
    assert_eq!(
        (file[5 * 512], file[6 * 512]),
        (0xee, 6),
        "one block written"
    );
    // Case 13: Ho < Do: a phase error, nothing written.
    let d = r
        .command(
            0,
            Expect::Out(512),
            &rw10(0x2a, 8, 2, 0),
            Some(Bytes::from(vec![0xdd; 512])),
        )
        .await;
    assert_eq!(d.csw.status, Status::PhaseError);
    assert_eq!(std::fs::read(&r.images[0]).expect("image")[8 * 512], 8);
    r.reset_recovery().await;
    let d = r.command(0, Expect::None, &[0; 6], None).await;
    assert_eq!(d.csw.status, Status::Passed);
}

#[tokio::test]
async fn several_luns() {
    let mut r = rig(&[("lun0", 64 << 10, ""), ("lun1", 128 << 10, ",ro,removable")]).await;
    let max = r
        .host
        .control(class(Direction::In, 0xfe, 1), Bytes::new())
        .await
        .expect("GET_MAX_LUN");
    assert_eq!(&max[..], &[1]);
    let d = r
        .command(1, Expect::In(8), &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], None)
        .await;
    assert_eq!(&d.data[..4], &[0, 0, 0, 255], "LUN 1 has 256 blocks");
    let d = r
        .command(1, Expect::In(36), &[0x12, 0, 0, 0, 36, 0], None)
        .await;
    assert_eq!(d.data[1], 0x80, "LUN 1 is removable");
    let d = r
        .command(4, Expect::In(36), &[0x12, 0, 0, 0, 36, 0], None)
        .await;
    assert_eq!(d.data[0], 0x7f, "no LUN 4");
    let d = r.command(4, Expect::None, &[0; 6], None).await;
    assert_eq!(d.csw.status, Status::Failed);
    assert_eq!(r.sense(4).await, (0x05, 0x25, 0x00));
}

#[tokio::test]
async fn reset_aborts_a_command_in_progress() {
    let mut r = rig(&[("abort", 2 << 20, "")]).await;
    r.tag += 1;
    let cbw = Cbw {
        tag: r.tag,
        expect: Expect::In(1 << 20),
        lun: 0,
        cb: rw10(0x28, 0, 2048, 0),
    };
    r.host
        .bulk_out(OUT, Bytes::copy_from_slice(&cbw.emit()))
        .await
        .expect("CBW");
    let part = r.host.bulk_in(IN, 64 << 10).await.expect("some data");
    assert_eq!(part.data.len(), 64 << 10);
    r.reset_recovery().await;
    let d = r
        .command(0, Expect::In(512), &rw10(0x28, 7, 1, 0), None)
        .await;
    assert_eq!((d.csw.status, d.data[0]), (Status::Passed, 7));
}

#[test]
fn options_and_start_errors() {
    let Function::Msc(o) =
        Function::parse("msc,ro,image=a.img,image=b.img,removable,luns=image=c.img;ro")
            .expect("valid")
    else {
        panic!("msc");
    };
    let flags: Vec<_> = o.luns.iter().map(|l| (l.read_only, l.removable)).collect();
    assert_eq!(flags, [(true, false), (false, true), (true, false)]);
    assert!(Function::parse("msc,size=3").is_err());
    assert!(
        Function::parse("msc,luns=ro").is_err(),
        "a LUN needs an image"
    );
    let many = (0..17)
        .map(|i| format!(",image={i}.img"))
        .collect::<String>();
    assert!(
        Function::parse(&format!("msc{many}")).is_err(),
        "16 LUNs at most"
    );
    let e = super::prepare(&Default::default(), 0).expect_err("no image");
    assert!(e.to_string().contains("image=FILE"), "{e}");
    let missing = std::env::temp_dir().join("usbfn-msc-missing.img");
    let Function::Msc(o) =
        Function::parse(&format!("msc,image={}", missing.display())).expect("ok")
    else {
        panic!("msc");
    };
    let e = super::prepare(&o, 0).expect_err("missing");
    assert!(e.to_string().contains("usbfn-msc-missing.img"), "{e}");
}

#[test]
fn msc_joins_a_composite_device() {
    let functions = [
        Function::parse("gadget-zero").expect("valid"),
        Function::parse("msc,image=a.img").expect("valid"),
    ];
    let config = device_config(&functions);
    let model = usbfn_core::DeviceModel::build(&config).expect("a valid composite");
    let msc = config
        .interfaces
        .iter()
        .find(|i| i.name == "msc0")
        .expect("the msc interface");
    assert_eq!(
        (msc.class, msc.subclass, msc.protocol),
        (Some(8), Some(6), Some(0x50))
    );
    let mut addresses: Vec<u8> = model.pipes().iter().map(|p| p.address.0).collect();
    let n = addresses.len();
    addresses.sort_unstable();
    addresses.dedup();
    assert_eq!(addresses.len(), n, "distinct endpoint addresses");
}
