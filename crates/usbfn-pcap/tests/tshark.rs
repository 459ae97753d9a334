//! Captures written by `usbfn-pcap` as Wireshark reads them: each test writes a small capture
//! to a temporary file and decodes it with `tshark` (Debian package `tshark`), which must be
//! installed: these tests fail without it.

use std::fs::File;
use std::io::{BufWriter, ErrorKind};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use usbfn_pcap::{IsoDesc, MIN_SNAPLEN, PcapWriter, Urb, UsbRecord, XferType};

const T0: Duration = Duration::from_secs(1_700_000_000);
const GET_DESCRIPTOR_DEVICE: [u8; 8] = [0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x12, 0x00];
/// bcdUSB 2.00, bMaxPacketSize0 64, idVendor 0x1209, idProduct 0x0001, bcdDevice 1.00.
const DEVICE_DESCRIPTOR: [u8; 18] = [
    0x12, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x40, 0x09, 0x12, 0x01, 0x00, 0x00, 0x01, 0x01, 0x02,
    0x03, 0x01,
];
const EPIPE: i32 = -32;

fn urb(id: u64, transfer_type: XferType, endpoint: u8) -> Urb {
    Urb {
        id,
        transfer_type,
        endpoint,
        devnum: 5,
        busnum: 3,
    }
}

fn write_capture(path: &Path, snaplen: u32, records: &[UsbRecord<'_>]) {
    let file = BufWriter::new(File::create(path).expect("create capture file"));
    let mut pcap = PcapWriter::with_snaplen(file, snaplen).expect("pcap header");
    for rec in records {
        pcap.record(rec).expect("pcap record");
    }
    pcap.flush().expect("flush capture");
}

/// Runs `tshark -r FILE ARGS` and returns its standard output, after checking that it exited
/// with 0 and reported nothing malformed.
fn tshark(file: &Path, args: &[&str]) -> String {
    let output = match Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(args)
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "tshark is not installed, and these tests decode captures with it: install it \
             (Debian: `apt-get install tshark`)"
        ),
        Err(e) => panic!("could not run tshark: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "tshark {args:?} failed: {}\n{stderr}\n{stdout}",
        output.status
    );
    for bad in ["Malformed", "malformed", "Exception"] {
        assert!(
            !stdout.contains(bad) && !stderr.contains(bad),
            "tshark says {bad}:\n{stdout}\n{stderr}"
        );
    }
    stdout
}

/// One line per frame, fields separated by `|`.
fn fields(file: &Path, names: &[&str]) -> Vec<String> {
    let mut args = vec!["-T", "fields", "-E", "separator=|"];
    for name in names {
        args.extend(["-e", name]);
    }
    tshark(file, &args).lines().map(str::to_owned).collect()
}

#[test]
fn tshark_decodes_control_and_bulk_transfers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("control-bulk.pcap");
    let ep0 = urb(0xffff_8880_1234_5600, XferType::Control, 0x80);
    let bulk_out = urb(2, XferType::Bulk, 0x02);
    let bulk_in = urb(3, XferType::Bulk, 0x81);
    let us = Duration::from_micros;
    write_capture(
        &path,
        usbfn_pcap::DEFAULT_SNAPLEN,
        &[
            UsbRecord::submit(&ep0, T0, 18, &[]).with_setup(GET_DESCRIPTOR_DEVICE),
            UsbRecord::complete(&ep0, T0 + us(250), 0, 18, &DEVICE_DESCRIPTOR),
            UsbRecord::submit(&bulk_out, T0 + us(1000), 4, b"ping"),
            UsbRecord::complete(&bulk_out, T0 + us(1100), 0, 4, &[]),
            UsbRecord::submit(&bulk_in, T0 + us(2000), 512, &[]),
            UsbRecord::complete(&bulk_in, T0 + us(2100), EPIPE, 0, &[]),
        ],
    );

    let rows = fields(
        &path,
        &[
            "frame.number",
            "frame.len",
            "usb.urb_id",
            "usb.urb_type",
            "usb.transfer_type",
            "usb.endpoint_address",
            "usb.device_address",
            "usb.bus_id",
            "usb.setup_flag",
            "usb.data_flag",
            "usb.urb_status",
            "usb.urb_len",
            "usb.data_len",
            "usb.urb_ts_usec",
        ],
    );
    assert_eq!(
        rows,
        [
            r"1|64|0xffff888012345600|'S'|0x02|0x80|5|3|'\0'|'<'|-115|18|0|0",
            r"2|82|0xffff888012345600|'C'|0x02|0x80|5|3|'-'|'\0'|0|18|18|250",
            r"3|68|0x0000000000000002|'S'|0x03|0x02|5|3|'-'|'\0'|-115|4|4|1000",
            r"4|64|0x0000000000000002|'C'|0x03|0x02|5|3|'-'|'>'|0|4|0|1100",
            r"5|64|0x0000000000000003|'S'|0x03|0x81|5|3|'-'|'<'|-115|512|0|2000",
            r"6|64|0x0000000000000003|'C'|0x03|0x81|5|3|'-'|'\0'|-32|0|0|2100",
        ]
    );

    // Requests and descriptors decoded, and the bulk OUT payload found.
    let payload = fields(
        &path,
        &[
            "usb.setup.bRequest",
            "usb.setup.wLength",
            "usb.idVendor",
            "usb.idProduct",
            "usb.bMaxPacketSize0",
            "usb.capdata",
        ],
    );
    assert_eq!(
        payload,
        [
            "6|18||||",
            "||0x1209|0x0001|64|",
            "|||||70696e67",
            "|||||",
            "|||||",
            "|||||"
        ]
    );

    let verbose = tshark(&path, &["-V"]);
    assert_eq!(
        verbose.matches("\nFrame ").count() + usize::from(verbose.starts_with("Frame ")),
        6
    );
    for expected in [
        "URB type: URB_SUBMIT ('S')",
        "bRequest: GET DESCRIPTOR (6)",
        "DEVICE DESCRIPTOR",
        "idVendor: ",
        "(0x1209)",
        "[Request in: 1]",
        "Endpoint: 0x81, Direction: IN",
        "URB status: Broken pipe (-EPIPE) (-32)",
        "Epoch Time: 1700000000.002100000 seconds",
    ] {
        assert!(
            verbose.contains(expected),
            "tshark -V lacks {expected:?}:\n{verbose}"
        );
    }
    let summary = tshark(&path, &[]);
    assert!(
        summary.contains("GET DESCRIPTOR Request DEVICE"),
        "{summary}"
    );
    assert!(
        summary.contains("GET DESCRIPTOR Response DEVICE"),
        "{summary}"
    );
}

#[test]
fn tshark_decodes_iso_errors_and_cut_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("iso-error-cut.pcap");
    let iso_in = urb(4, XferType::Isochronous, 0x83);
    let bulk_out = urb(5, XferType::Bulk, 0x01);
    let descs = [
        IsoDesc {
            status: 0,
            offset: 0,
            length: 2,
        },
        IsoDesc {
            status: 0,
            offset: 2,
            length: 3,
        },
    ];
    let iso_data = [0x11, 0x22, 0x33, 0x44, 0x55];
    let big = vec![0x5a; 10_000];
    write_capture(
        &path,
        MIN_SNAPLEN,
        &[
            UsbRecord::complete(&iso_in, T0, 0, 5, &iso_data)
                .with_iso(&descs, 100, 0)
                .with_interval(1),
            UsbRecord::error(&bulk_out, T0, -19),
            UsbRecord::submit(&bulk_out, T0, 10_000, &big),
        ],
    );

    let rows = fields(
        &path,
        &[
            "frame.len",
            "frame.cap_len",
            "usb.urb_type",
            "usb.transfer_type",
            "usb.data_flag",
            "usb.urb_status",
            "usb.urb_len",
            "usb.data_len",
            "usb.iso.numdesc",
            "usb.iso.iso_len",
            "usb.iso.data",
            "usb.start_frame",
        ],
    );
    // usb.iso.numdesc: the union's count, then ndesc; the cut frame keeps its real sizes.
    let cut = MIN_SNAPLEN - 64;
    assert_eq!(
        rows,
        [
            "101|101|'C'|0x00|'\\0'|0|5|37|2,2|2,3|1122,334455|100".to_owned(),
            "64|64|'E'|0x03|'E'|-19|0|0|0|||0".to_owned(),
            format!("10064|{MIN_SNAPLEN}|'S'|0x03|'\\0'|-115|10000|{cut}|0|||0"),
        ]
    );
    let verbose = tshark(&path, &["-V"]);
    assert!(
        verbose.contains("URB status: No such device (-ENODEV) (-19)"),
        "{verbose}"
    );
}
