//! Seed inputs for every target, built from real messages: the USB/IP bytes our client and
//! server put on the wire for a Gadget Zero session, enumeration and transfer scripts, the
//! TOML examples of the documentation and tests, and the descriptors usbfn generates for
//! Gadget Zero (plus a few real devices' descriptor sets).
//!
//! `cargo run --bin gen-corpus` writes them to `corpus/<target>/<name>`.

use bytes::{Bytes, BytesMut};
use usbfn_core::{BusSpeed, Device, DeviceConfig, DeviceModel};
use usbfn_usbip::proto::{
    BusId, ClientCodec, CmdSubmit, CmdUnlink, Direction, ExportedDevice, IsoPacketDescriptor,
    Limits, OpReply, OpRequest, OpStatus, RetSubmit, RetUnlink, TransferFlags, UsbDevice,
    UsbInterface, UsbSpeed, errno,
};
use usbfn_wire::{encode_langid_descriptor, encode_string_descriptor};

use crate::core_ops::{self, Op};
use crate::usbip::{self, SMALL_LIMITS, UNLINK_BASE, URB_PHASE};

/// One seed: a file name and its bytes.
pub type Seed = (String, Vec<u8>);

/// Every target's seeds, by target name.
pub fn all() -> Vec<(&'static str, Vec<Seed>)> {
    vec![
        ("usbip_server", usbip_server()),
        ("usbip_client", usbip_client()),
        ("usbip_iso", usbip_iso()),
        ("core_events", core_events()),
        ("config_toml", config_toml()),
        ("descriptors", descriptors()),
        ("ipc_frame", ipc_frame()),
        ("ioctl_dispatch", ioctl_dispatch()),
        ("ntb_parser", crate::ntb::seeds()),
        ("msc_bot", msc_bot()),
        ("cdc_request", cdc_request()),
        ("hid_request", hid_request()),
        ("hid_command", hid_command()),
        ("usbredir_codec", usbredir_codec()),
    ]
}

/// Seeds for `msc_bot`: what Linux's usb-storage sends at enumeration and in use, on a
/// writable and on a read-only removable LUN.
pub fn msc_bot() -> Vec<Seed> {
    use usbfn::functions::msc::bot::{Cbw, Expect};
    let cbw = |tag: u32, expect: Expect, cb: &[u8]| {
        Cbw {
            tag,
            expect,
            lun: 0,
            cb: cb.to_vec(),
        }
        .emit()
        .to_vec()
    };
    let session = [
        cbw(1, Expect::In(36), &[0x12, 0, 0, 0, 36, 0]),
        cbw(2, Expect::None, &[0; 6]),
        cbw(3, Expect::In(8), &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        cbw(4, Expect::In(192), &[0x1a, 0, 0x3f, 0, 192, 0]),
        cbw(5, Expect::In(4096), &[0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0]),
        cbw(6, Expect::Out(512), &[0x2a, 0x08, 0, 0, 0, 9, 0, 0, 1, 0]),
        cbw(7, Expect::None, &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        cbw(8, Expect::In(18), &[0x03, 0, 0, 0, 18, 0]),
        cbw(9, Expect::In(64), &[0xd7, 0, 0, 0, 64, 0]),
        cbw(10, Expect::In(255), &[0x12, 1, 0x80, 0, 255, 0]),
        cbw(11, Expect::None, &[0x1e, 0, 0, 0, 1, 0]),
        cbw(12, Expect::None, &[0x1b, 0, 0, 0, 2, 0]),
    ]
    .concat();
    let mut rw = vec![0u8];
    rw.extend_from_slice(&session);
    let mut ro = vec![3u8];
    ro.extend_from_slice(&session);
    vec![
        ("linux-session".into(), rw),
        ("linux-session-ro-removable".into(), ro),
    ]
}

/// Seeds for `ioctl_dispatch`: a service session through raw IOCTLs with a host that
/// enumerates, moves data both ways, sends a vendor request and goes away.
pub fn ioctl_dispatch() -> Vec<Seed> {
    use crate::ioctl::Step;
    // Indexes into ioctl::CODES.
    const TRANSFER_IN: u8 = 0;
    const TRANSFER_OUT: u8 = 2;
    const HANDSHAKE_IN: u8 = 3;
    const SET_PIPE_STATE: u8 = 6;
    const GET_CLASS_INFO: u8 = 7;
    const GET_CLASS_INFO_EX: u8 = 8;
    const DESCRIPTOR_SET: u8 = 9;
    const REGISTER_STRING: u8 = 10;
    const EVENT: u8 = 13;
    let ioctl = |iface: u8, code: u8, pipe: u32, input_len: u16, output_len: u16, capacity: u16| {
        Step::Ioctl {
            iface,
            code,
            raw: 0,
            pipe,
            input_len,
            output_len,
            capacity,
            keep: true,
        }
    };
    let session = vec![
        ioctl(0, GET_CLASS_INFO, 0, 0, 0, 748),
        ioctl(1, GET_CLASS_INFO_EX, 0, 0, 0, 2048),
        ioctl(0, DESCRIPTOR_SET, 0x0003_0000, 4, 0, 1024),
        ioctl(0, REGISTER_STRING, 4, 512, 0, 0),
        Step::Attach(1),
        ioctl(0, EVENT, 0, 0, 0, 12),
        Step::Configure(1),
        ioctl(0, EVENT, 0, 0, 0, 12),
        ioctl(0, TRANSFER_IN, 1, 4, 1000, 0),
        Step::Urb {
            ep: 1,
            dir_in: true,
            len: 512,
        },
        Step::Urb {
            ep: 1,
            dir_in: true,
            len: 512,
        },
        ioctl(0, TRANSFER_OUT, 2, 4, 0, 512),
        Step::Urb {
            ep: 1,
            dir_in: false,
            len: 100,
        },
        ioctl(1, TRANSFER_IN, 3, 4, 8, 0),
        Step::Urb {
            ep: 2,
            dir_in: true,
            len: 8,
        },
        Step::Control([0xc0, 0x5c, 0, 0, 0, 0, 16, 0]),
        ioctl(0, EVENT, 0, 0, 0, 12),
        ioctl(0, TRANSFER_IN, 0, 4, 16, 0),
        ioctl(0, HANDSHAKE_IN, 0, 4, 0, 0),
        ioctl(0, SET_PIPE_STATE, 1, 4, 1, 0),
        ioctl(0, TRANSFER_OUT, 2, 4, 0, 4096),
        Step::Detach,
    ];
    vec![("session".into(), crate::ioctl::encode(&session))]
}

/// Seeds for `ipc_frame`: what a service (`RemoteInterface`) and the daemon send for a
/// session: HELLO, class info, activate, a bus event, an IN and an OUT transfer, a stall,
/// a string, a cancel, and their completions.
pub fn ipc_frame() -> Vec<Seed> {
    use usbfn_abi::{IoctlCode, NtStatus, UsbString};
    use usbfn_ipc::frame::{Cancel, Completion, DaemonFrame, Hello, Request, ServiceFrame};
    let pipe = |p: u32| Bytes::copy_from_slice(&p.to_le_bytes());
    let request = |id: u64, code: IoctlCode, input: Bytes, output_length: u32, output: Bytes| {
        ServiceFrame::Request(Request {
            id,
            code,
            input,
            output_length,
            output,
        })
    };
    let string = UsbString {
        string_index: 4,
        string: usbfn_abi::UsbStringText::new("usbfn fuzz").expect("fits"),
    };
    let service = [
        request(
            1,
            IoctlCode::GET_CLASS_INFO_EX,
            Bytes::new(),
            1024,
            Bytes::new(),
        ),
        request(
            2,
            IoctlCode::ACTIVATE_USB_BUS,
            Bytes::new(),
            0,
            Bytes::new(),
        ),
        request(
            3,
            IoctlCode::BUS_EVENT_NOTIFICATION,
            Bytes::new(),
            12,
            Bytes::new(),
        ),
        request(
            4,
            IoctlCode::TRANSFER_IN,
            pipe(1),
            5,
            Bytes::from_static(b"hello"),
        ),
        request(5, IoctlCode::TRANSFER_OUT, pipe(2), 512, Bytes::new()),
        request(
            6,
            IoctlCode::SET_PIPE_STATE,
            pipe(1),
            1,
            Bytes::from_static(&[1]),
        ),
        request(
            7,
            IoctlCode::REGISTER_USB_STRING,
            Bytes::copy_from_slice(&string.encode()),
            0,
            Bytes::new(),
        ),
        ServiceFrame::Cancel(Cancel { id: 5 }),
    ];
    let mut from_service = BytesMut::new();
    for f in &service {
        f.encode(&mut from_service).expect("valid frame");
    }
    let completion = |id: u64, status: NtStatus, information: u32, output: &'static [u8]| {
        DaemonFrame::Completion(Completion {
            id,
            status,
            information,
            output: Bytes::from_static(output),
        })
    };
    let daemon = [
        DaemonFrame::Hello(Hello::new(NtStatus::STATUS_SUCCESS)),
        completion(2, NtStatus::STATUS_SUCCESS, 0, b""),
        completion(
            3,
            NtStatus::STATUS_SUCCESS,
            12,
            &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
        completion(4, NtStatus::STATUS_SUCCESS, 5, b""),
        completion(5, NtStatus::STATUS_CANCELLED, 0, b""),
        completion(6, NtStatus::STATUS_SUCCESS, 0, b""),
    ];
    let mut from_daemon = BytesMut::new();
    for f in &daemon {
        f.encode(&mut from_daemon).expect("valid frame");
    }
    let mut busy = BytesMut::new();
    DaemonFrame::Hello(Hello::new(NtStatus(0xC000_0043)))
        .encode(&mut busy)
        .expect("valid frame");
    vec![
        ("service-session".into(), with_control(0, &from_service)),
        (
            "service-session-chunk50".into(),
            with_control(7, &from_service),
        ),
        ("daemon-session".into(), with_control(0x40, &from_daemon)),
        (
            "daemon-session-chunk8".into(),
            with_control(0x41, &from_daemon),
        ),
        ("daemon-hello-busy".into(), with_control(0x40, &busy)),
    ]
}

const DEVID: u32 = 0x0001_0002;

fn with_control(control: u8, stream: &[u8]) -> Vec<u8> {
    let mut v = vec![control];
    v.extend_from_slice(stream);
    v
}

fn submit(seqnum: u32, direction: Direction, ep: u8, setup: [u8; 8], len: u32) -> CmdSubmit {
    CmdSubmit {
        seqnum,
        devid: DEVID,
        direction,
        ep,
        transfer_flags: if direction == Direction::In {
            TransferFlags::DIR_IN
        } else {
            TransferFlags::NONE
        },
        transfer_buffer_length: len,
        start_frame: 0,
        number_of_packets: 0,
        interval: 0,
        setup,
        data: if direction == Direction::Out {
            Bytes::from(
                (0..len)
                    .map(|i| ((i % 512) % 63) as u8)
                    .collect::<Vec<u8>>(),
            )
        } else {
            Bytes::new()
        },
        iso: Vec::new(),
    }
}

/// The URB traffic of a short Gadget Zero session, as our client encodes it.
fn session_urbs() -> BytesMut {
    let mut codec = ClientCodec::new(Limits::DEFAULT);
    let mut wire = BytesMut::new();
    let mut cmds = vec![
        // GET_DESCRIPTOR(DEVICE), SET_CONFIGURATION(1), GET_DESCRIPTOR(CONFIGURATION).
        submit(1, Direction::In, 0, [0x80, 6, 0, 1, 0, 0, 18, 0], 18),
        submit(2, Direction::Out, 0, [0x00, 9, 1, 0, 0, 0, 0, 0], 0),
        submit(3, Direction::In, 0, [0x80, 6, 0, 2, 0, 0, 0xff, 0], 255),
        // Vendor write of 8 bytes (Gadget Zero 0x5b).
        submit(4, Direction::Out, 0, [0x40, 0x5b, 0, 0, 0, 0, 8, 0], 8),
        // Bulk IN and OUT.
        submit(5, Direction::In, 1, [0; 8], 512),
        submit(6, Direction::Out, 1, [0; 8], 1000),
    ];
    // Windows hosts send number_of_packets -1 for non-isochronous URBs.
    let mut windows = submit(7, Direction::In, 1, [0; 8], 4096);
    windows.number_of_packets = -1;
    cmds.push(windows);
    // An isochronous OUT URB with 4 packets of 64 bytes.
    let mut iso = submit(8, Direction::Out, 2, [0; 8], 256);
    iso.number_of_packets = 4;
    iso.transfer_flags = TransferFlags::ISO_ASAP;
    iso.iso = (0..4)
        .map(|k| IsoPacketDescriptor {
            offset: k * 64,
            length: 64,
            actual_length: 0,
            status: 0,
        })
        .collect();
    cmds.push(iso);
    for cmd in &cmds {
        codec
            .encode_submit(cmd, &mut wire)
            .expect("seed URBs are valid");
    }
    let unlink = CmdUnlink {
        seqnum: 9,
        devid: DEVID,
        direction: Direction::In,
        ep: 1,
        unlink_seqnum: 5,
    };
    codec.encode_unlink(&unlink, &mut wire).expect("valid");
    wire
}

/// Seeds for `usbip_server`.
pub fn usbip_server() -> Vec<Seed> {
    let mut devlist = BytesMut::new();
    OpRequest::Devlist.encode(&mut devlist);
    let mut import = BytesMut::new();
    OpRequest::Import {
        busid: BusId::new("1-1").expect("valid busid"),
    }
    .encode(&mut import);
    let urbs = session_urbs();
    let mut session = import.clone();
    session.extend_from_slice(&urbs);
    // A CMD_SUBMIT that claims a 4 GiB OUT buffer (refused before anything is reserved).
    let mut huge = BytesMut::new();
    for v in [1u32, 1, DEVID, 0, 1, 0, 0xffff_fff0, 0, 0, 0, 0, 0] {
        huge.extend_from_slice(&v.to_be_bytes());
    }
    vec![
        ("op-devlist".into(), with_control(0, &devlist)),
        ("op-import".into(), with_control(3, &import)),
        ("session-chunk1".into(), with_control(0, &session)),
        ("session-chunk64".into(), with_control(9, &session)),
        ("urbs-only".into(), with_control(URB_PHASE | 20, &urbs)),
        (
            "urbs-small-limits".into(),
            with_control(URB_PHASE | SMALL_LIMITS | 5, &urbs),
        ),
        ("oversized".into(), with_control(URB_PHASE, &huge)),
    ]
}

fn gadget_zero_device(busid: &str, devnum: u32) -> UsbDevice {
    UsbDevice {
        path: usbfn_usbip::proto::DevicePath::new(&format!("/sys/devices/usbfn/usb1/{busid}"))
            .expect("valid path"),
        busid: BusId::new(busid).expect("valid busid"),
        busnum: 1,
        devnum,
        speed: UsbSpeed::HIGH,
        id_vendor: 0x0525,
        id_product: 0xa4a0,
        bcd_device: 0x0100,
        b_device_class: 0xff,
        b_device_sub_class: 0,
        b_device_protocol: 0,
        b_configuration_value: 1,
        b_num_configurations: 1,
        b_num_interfaces: 1,
    }
}

/// Seeds for `usbip_client`.
pub fn usbip_client() -> Vec<Seed> {
    let gz = gadget_zero_device("1-1", 2);
    let mut idle = gadget_zero_device("1-2", 3);
    idle.id_vendor = 0x1209;
    idle.id_product = 0x0002;
    let mut devlist = BytesMut::new();
    OpReply::Devlist {
        status: OpStatus::OK,
        devices: vec![
            ExportedDevice {
                device: gz.clone(),
                interfaces: vec![UsbInterface {
                    b_interface_class: 0xff,
                    b_interface_sub_class: 0,
                    b_interface_protocol: 0,
                }],
            },
            ExportedDevice {
                device: idle,
                interfaces: vec![UsbInterface::default()],
            },
        ],
    }
    .encode(&mut devlist)
    .expect("valid devlist");
    let mut import = BytesMut::new();
    OpReply::Import {
        status: OpStatus::OK,
        device: Some(gz),
    }
    .encode(&mut import)
    .expect("valid import");
    let mut busy = BytesMut::new();
    OpReply::Import {
        status: OpStatus::DEV_BUSY,
        device: None,
    }
    .encode(&mut busy)
    .expect("valid");

    // Replies to usbip::client_urbs(): URB 1 is cancelled by its unlink, URB 2 completes
    // before its unlink is answered, the rest complete.
    let mut replies = BytesMut::new();
    for cmd in usbip::client_urbs() {
        if cmd.seqnum == 1 {
            continue;
        }
        let len = cmd.transfer_buffer_length;
        let actual = if cmd.direction == Direction::In {
            len / 2
        } else {
            len
        };
        let iso: Vec<IsoPacketDescriptor> = cmd
            .iso
            .iter()
            .enumerate()
            .map(|(k, d)| IsoPacketDescriptor {
                offset: d.offset,
                length: d.length,
                actual_length: if k < 2 { actual / 2 } else { 0 },
                status: 0,
            })
            .collect();
        let ret = RetSubmit {
            seqnum: cmd.seqnum,
            status: 0,
            actual_length: actual,
            start_frame: 0,
            number_of_packets: cmd.number_of_packets,
            error_count: 0,
            data: if cmd.direction == Direction::In {
                Bytes::from(vec![0x5a; actual as usize])
            } else {
                Bytes::new()
            },
            iso,
        };
        ret.encode(cmd.direction, &mut replies)
            .expect("valid reply");
    }
    for (n, status) in [(1u32, -errno::ECONNRESET), (2, 0)] {
        RetUnlink {
            seqnum: UNLINK_BASE + n,
            status,
        }
        .encode(&mut replies)
        .expect("valid");
    }
    let mut session = import.clone();
    session.extend_from_slice(&replies);
    vec![
        ("op-devlist".into(), with_control(0, &devlist)),
        ("op-devlist-chunked".into(), with_control(11, &devlist)),
        ("op-import-busy".into(), with_control(0, &busy)),
        ("session".into(), with_control(4, &session)),
        (
            "replies-only".into(),
            with_control(URB_PHASE | 30, &replies),
        ),
        (
            "replies-small-limits".into(),
            with_control(URB_PHASE | SMALL_LIMITS | 2, &replies),
        ),
    ]
}

fn setup(bm_request_type: u8, b_request: u8, w_value: u16, w_index: u16, w_length: u16) -> Op {
    let [v0, v1] = w_value.to_le_bytes();
    let [i0, i1] = w_index.to_le_bytes();
    let [l0, l1] = w_length.to_le_bytes();
    Op::Control {
        setup: [bm_request_type, b_request, v0, v1, i0, i1, l0, l1],
        buffer_len: w_length,
        data_len: if bm_request_type & 0x80 == 0 {
            w_length
        } else {
            0
        },
    }
}

fn get_descriptor(kind: u8, index: u8, len: u16) -> Op {
    setup(0x80, 6, u16::from(kind) << 8 | u16::from(index), 0, len)
}

fn configured() -> Vec<Op> {
    vec![
        Op::Activate(0),
        Op::Activate(1),
        Op::Attach,
        Op::Reset(1),
        setup(0x00, 5, 5, 0, 0),
        Op::SetConfiguration(1),
        Op::PollEvents(0),
        Op::PollEvents(1),
    ]
}

fn data(ep: u8, dir_in: bool, len: u16, flags: u8) -> Op {
    Op::Data {
        ep,
        dir_in,
        len,
        flags,
    }
}

/// Seeds for `core_events`: scripts of real host and service behaviour.
pub fn core_events() -> Vec<Seed> {
    let enumerate = vec![
        Op::Activate(0),
        Op::Activate(1),
        Op::Attach,
        Op::Reset(1),
        get_descriptor(1, 0, 64),
        setup(0x00, 5, 5, 0, 0),
        get_descriptor(1, 0, 18),
        get_descriptor(2, 0, 9),
        get_descriptor(2, 0, 255),
        get_descriptor(2, 1, 255),
        get_descriptor(3, 0, 255),
        get_descriptor(3, 1, 255),
        get_descriptor(3, 2, 255),
        get_descriptor(3, 3, 255),
        get_descriptor(15, 0, 5),
        get_descriptor(15, 0, 255),
        get_descriptor(6, 0, 10),
        get_descriptor(7, 0, 255),
        Op::SetConfiguration(1),
        setup(0x80, 8, 0, 0, 1),
        setup(0x80, 0, 0, 0, 2),
        setup(0x81, 10, 0, 0, 1),
        setup(0x81, 0, 0, 1, 2),
        Op::PollEvents(0),
        Op::PollEvents(1),
        Op::Query {
            function: 0,
            number: 0,
            speed: 1,
        },
        Op::Query {
            function: 1,
            number: 1,
            speed: 2,
        },
    ];
    let mut bulk = configured();
    bulk.extend([
        Op::TransferIn {
            function: 0,
            pipe: 1,
            len: 1000,
            append_zero: false,
        },
        data(1, true, 512, 0),
        data(1, true, 512, 0),
        Op::TransferIn {
            function: 0,
            pipe: 1,
            len: 1024,
            append_zero: true,
        },
        data(1, true, 1024, 0),
        data(1, true, 512, 1),
        Op::TransferOut {
            function: 0,
            pipe: 2,
            capacity: 4096,
        },
        data(1, false, 700, 0),
        data(1, false, 1024, 2),
        data(1, false, 0, 0),
        Op::TransferOut {
            function: 0,
            pipe: 2,
            capacity: 100,
        },
        data(1, false, 512, 0),
        data(2, true, 8, 0),
        Op::TransferIn {
            function: 1,
            pipe: 3,
            len: 6,
            append_zero: false,
        },
        data(2, true, 64, 1),
        data(1, true, 512, 0),
        Op::Unlink(0),
        Op::TransferOut {
            function: 0,
            pipe: 2,
            capacity: 512,
        },
        Op::Cancel(0),
        Op::TransferIn {
            function: 1,
            pipe: 1,
            len: 8,
            append_zero: false,
        },
    ]);
    let mut vendor = configured();
    vendor.extend([
        setup(0xc0, 0x5c, 0, 0, 16),
        Op::PollEvents(0),
        Op::TransferIn {
            function: 0,
            pipe: 0,
            len: 16,
            append_zero: false,
        },
        Op::Handshake {
            function: 0,
            dir_in: true,
        },
        setup(0x40, 0x5b, 0, 0, 8),
        Op::PollEvents(0),
        Op::TransferOut {
            function: 0,
            pipe: 0,
            capacity: 8,
        },
        Op::Handshake {
            function: 0,
            dir_in: false,
        },
        setup(0x21, 0x0a, 0, 1, 0),
        Op::PollEvents(1),
        Op::Handshake {
            function: 1,
            dir_in: false,
        },
        setup(0xc0, 0x42, 0, 0, 4),
        setup(0x80, 0, 0, 0, 2),
        Op::Advance(150),
        setup(0xc1, 0x01, 0x0100, 1, 8),
        Op::PollEvents(1),
        Op::SetPipeState {
            function: 1,
            pipe: 0,
            stall: true,
        },
        setup(0x40, 0x5b, 0, 0, 8),
        Op::Unlink(0),
        Op::Handshake {
            function: 0,
            dir_in: false,
        },
    ]);
    let mut halt = configured();
    halt.extend([
        setup(0x02, 3, 0, 0x81, 0),
        data(1, true, 512, 0),
        setup(0x82, 0, 0, 0x81, 2),
        setup(0x02, 1, 0, 0x81, 0),
        Op::SetPipeState {
            function: 0,
            pipe: 2,
            stall: true,
        },
        Op::GetPipeState {
            function: 0,
            pipe: 2,
        },
        data(1, false, 64, 0),
        Op::SetPipeState {
            function: 0,
            pipe: 2,
            stall: false,
        },
        setup(0x01, 11, 1, 0, 0),
        Op::PollEvents(0),
        data(1, true, 64, 0),
        Op::TransferIn {
            function: 0,
            pipe: 1,
            len: 64,
            append_zero: false,
        },
        data(1, false, 256, 4),
        setup(0x01, 11, 0, 0, 0),
        Op::SetConfiguration(7),
        Op::SetConfiguration(0),
        setup(0x00, 3, 1, 0, 0),
        Op::Suspend,
        Op::Resume,
    ]);
    let mut teardown = configured();
    for _ in 0..20 {
        teardown.push(data(2, true, 8, 0));
    }
    for _ in 0..5 {
        teardown.push(Op::TransferOut {
            function: 0,
            pipe: 2,
            capacity: 512,
        });
    }
    for n in 0..10 {
        teardown.push(Op::Unlink(n));
    }
    teardown.extend([
        Op::Unlink(255),
        Op::Cancel(255),
        Op::Suspend,
        data(2, true, 8, 0),
        Op::Detach,
        data(2, true, 8, 0),
        Op::Attach,
        Op::Reset(2),
        Op::SetConfiguration(1),
        data(2, true, 8, 0),
        Op::Deactivate(1),
        Op::RegisterString { index: 4, len: 20 },
        Op::RegisterString { index: 0, len: 1 },
        Op::RegisterString { index: 5, len: 200 },
    ]);
    [
        ("enumerate", enumerate),
        ("bulk", bulk),
        ("vendor-control", vendor),
        ("halt-and-alternates", halt),
        ("teardown", teardown),
    ]
    .into_iter()
    .map(|(name, ops)| (name.to_owned(), core_ops::encode(&ops)))
    .collect()
}

/// The TOML examples of the documentation and tests.
pub fn config_examples() -> Vec<(&'static str, String)> {
    vec![
        ("fuzz-device", core_ops::DEVICE_TOML.to_owned()),
        ("gadget-zero", gadget_zero_toml()),
        (
            "module-example",
            r#"[device]
vendor_id = 0x0525
product_id = 0xa4a0
manufacturer = "usbfn"
product = "Gadget Zero"

[[interfaces]]
name = "source-sink"
guid = "{6c5b3f5e-0d6f-4b0e-9a59-0a5c3b0e7d11}"
class = 0xff
[[interfaces.endpoints]]
direction = "in"
type = "bulk"
max_packet = { full = 64, high = 512 }
[[interfaces.endpoints]]
direction = "out"
type = "bulk"
max_packet = 512
"#
            .to_owned(),
        ),
        (
            "idle-device",
            r#"[device]
vendor_id = 0x1209
product_id = 0x0002
[[interfaces]]
name = "idle"
endpoints = [{ direction = "in", type = "bulk" }, { direction = "in", type = "interrupt", max_packet = 8 }]
"#
            .to_owned(),
        ),
        (
            "registry-blob",
            "[device]\nvendor_id = 1\nproduct_id = 2\n[[interfaces]]\nname = \"a\"\n\
             descriptor = \"09 04 07 00 02 ff 00 00 05  07 05 81 02 00 02 00  07 05 02 03 08 80 04\"\n"
                .to_owned(),
        ),
        (
            "hid-class-descriptors",
            "[device]\nvendor_id = 1\nproduct_id = 2\nmax_speed = \"full\"\n[[interfaces]]\n\
             name = \"a\"\nclass = 3\nclass_descriptors = \"09 21 11 01 00 01 22 34 00\"\n\
             endpoints = [{ direction = \"in\", type = \"interrupt\", max_packet = 4, interval = 10 }]\n"
                .to_owned(),
        ),
        (
            "association",
            "[device]\nvendor_id = 1\nproduct_id = 2\nclass = 0xef\nsubclass = 2\nprotocol = 1\n\
             [[interfaces]]\nname = \"control\"\nclass = 2\n\
             endpoints = [{ direction = \"in\", type = \"interrupt\", max_packet = 16 }]\n\
             [[interfaces]]\nname = \"data\"\nclass = 10\n\
             endpoints = [{ direction = \"in\", type = \"bulk\" }, { direction = \"out\", type = \"bulk\" }]\n\
             [[associations]]\ninterfaces = [\"control\", \"data\"]\nclass = 2\nsubclass = 2\nstring = \"CDC\"\n"
                .to_owned(),
        ),
        (
            "superspeed-iso",
            "[device]\nvendor_id = 1\nproduct_id = 2\nlpm = true\n[[interfaces]]\nname = \"audio\"\n\
             [[interfaces.alternates]]\nclass = 1\n\
             endpoints = [{ direction = \"in\", type = \"isochronous\", max_packet = { full = 192, high = 1024, super = 1024 }, max_burst = 2, ss_attributes = 1, iso_attributes = 4 }]\n\
             [control]\nsetup_timeout_ms = 250\n"
                .to_owned(),
        ),
    ]
}

/// Seeds for `config_toml`.
pub fn config_toml() -> Vec<Seed> {
    config_examples()
        .into_iter()
        .map(|(name, text)| (name.to_owned(), text.into_bytes()))
        .collect()
}

/// A USB HID boot mouse (a Logitech 046d:c077 as `lsusb -v` shows it).
const HID_MOUSE_CONFIG: [u8; 34] = [
    0x09, 0x02, 0x22, 0x00, 0x01, 0x01, 0x00, 0xa0, 0x32, 0x09, 0x04, 0x00, 0x00, 0x01, 0x03, 0x01,
    0x02, 0x00, 0x09, 0x21, 0x11, 0x01, 0x00, 0x01, 0x22, 0x43, 0x00, 0x07, 0x05, 0x81, 0x03, 0x04,
    0x00, 0x0a,
];

/// Seeds for `descriptors`: what usbfn answers GET_DESCRIPTOR with for Gadget Zero and for
/// the fuzz device, at every speed, and a real mouse's configuration.
pub fn descriptors() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let devices = [
        ("gz", gadget_zero_toml()),
        ("fuzzdev", core_ops::DEVICE_TOML.to_owned()),
    ];
    for (name, toml) in devices {
        let config = DeviceConfig::from_toml(&toml).expect("seed TOML parses");
        let model = DeviceModel::build(&config).expect("seed device is valid");
        let device = Device::new(model, std::time::Instant::now()).expect("descriptors fit");
        for speed in BusSpeed::ALL {
            let set = device.descriptors(speed);
            seeds.push((format!("{name}-{speed}-device"), set.device.clone()));
            for (i, c) in set.configurations.iter().enumerate() {
                seeds.push((format!("{name}-{speed}-config{i}"), c.clone()));
            }
            for (i, c) in set.other_speed.iter().enumerate() {
                seeds.push((format!("{name}-{speed}-other-speed{i}"), c.clone()));
            }
            if let Some(q) = &set.qualifier {
                seeds.push((format!("{name}-{speed}-qualifier"), q.clone()));
            }
            if let Some(b) = &set.bos {
                seeds.push((format!("{name}-{speed}-bos"), b.clone()));
            }
        }
    }
    seeds.push(("hid-mouse-config".into(), HID_MOUSE_CONFIG.to_vec()));
    seeds.push((
        "string-product".into(),
        encode_string_descriptor("Gadget Zero").expect("fits"),
    ));
    seeds.push((
        "string-langid".into(),
        encode_langid_descriptor(&[0x0409]).expect("fits"),
    ));
    seeds.push((
        "setup-get-device".into(),
        vec![0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x40, 0x00],
    ));
    seeds
}

/// Seeds for `usbip_iso`: iso IN and OUT URBs at each speed with data queued, one whose
/// header count disagrees with its descriptors, an unlink and a reset.
pub fn usbip_iso() -> Vec<Seed> {
    let mut seeds = Vec::new();
    for (name, first) in [
        ("full", 0u8),
        ("high", 1),
        ("super-mult-burst", 2 | 0x10 | 0x40),
    ] {
        let mut s = vec![first];
        s.extend_from_slice(&[3, 0x00, 0x40]); // TRANSFER_IN of 16 KiB on iso IN
        s.extend_from_slice(&[4, 0x00, 0x04]); // TRANSFER_OUT of 1 KiB on iso OUT
        s.extend_from_slice(&[0, 0, 4, 4, 1, 0, 0]); // iso IN, 4 packets, ASAP
        for i in 0..4u16 {
            s.extend_from_slice(&(i * 1024).to_le_bytes());
            s.extend_from_slice(&1024u16.to_le_bytes());
        }
        s.extend_from_slice(&[0, 1, 2, 2, 0, 7, 0, 0x00, 0x08]); // iso OUT at frame 7
        s.extend_from_slice(&[0, 0, 0x00, 0x04, 0x00, 0x04, 0x00, 0x04]);
        s.extend_from_slice(&[0, 1, 9, 1, 1, 0, 0, 0x00, 0x02]); // count 9, 1 written
        s.extend_from_slice(&[0, 0, 0x00, 0x02]);
        s.extend_from_slice(&[2, 0x00, 0x10]); // advance
        s.extend_from_slice(&[1, 0, 5]); // unlink, reset
        seeds.push((format!("seed-{name}"), s));
    }
    seeds
}

/// Gadget Zero's configuration (`usbfn::functions::gadget_zero::config()`) as a TOML file.
pub fn gadget_zero_toml() -> String {
    usbfn::functions::gadget_zero::config()
        .to_toml()
        .expect("Gadget Zero's configuration serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed corpus holds the seeds of today's code (rerun `gen-corpus` if not).
    #[test]
    fn committed_seeds_are_current() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        for (target, seeds) in all() {
            for (name, bytes) in seeds {
                let path = root.join(target).join(&name);
                let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
                    panic!("{}: {e}; run `cargo run --bin gen-corpus`", path.display())
                });
                assert!(
                    on_disk == bytes,
                    "{} is stale; run `cargo run --bin gen-corpus`",
                    path.display()
                );
            }
        }
    }

    /// Every committed corpus file (seeds, and regressions added by hand) passes its harness.
    #[test]
    fn corpus_replays_clean() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        type Harness = fn(&[u8]);
        let harnesses: [(&str, Harness); 9] = [
            ("usbip_server", usbip::server_stream),
            ("usbip_iso", crate::iso::run),
            ("msc_bot", crate::msc::run),
            ("usbip_client", usbip::client_stream),
            ("core_events", core_ops::run),
            ("config_toml", crate::config::run),
            ("descriptors", crate::descriptors::run),
            ("ipc_frame", crate::ipc::frames),
            ("ioctl_dispatch", crate::ioctl::run),
        ];
        for (target, run) in harnesses {
            let dir = root.join(target);
            let entries =
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            for entry in entries {
                let path = entry.expect("dir entry").path();
                let bytes = std::fs::read(&path).expect("read corpus file");
                run(&bytes);
            }
        }
    }

    #[test]
    fn gadget_zero_toml_is_gadget_zero() {
        let config = DeviceConfig::from_toml(&gadget_zero_toml()).expect("parses");
        assert_eq!(
            (config.device.vendor_id, config.device.product_id),
            (0x0525, 0xa4a0)
        );
        assert_eq!(config.interfaces[0].endpoints.len(), 4);
        assert_eq!(config.interfaces[0].alternates[0].endpoints.len(), 6);
    }
}

/// Seeds for `cdc_request`: what Linux's cdc-acm sends (8 setup bytes, the interface, a data
/// stage).
pub fn cdc_request() -> Vec<Seed> {
    let with = |setup: [u8; 8], stage: &[u8]| {
        let mut v = setup.to_vec();
        v.push(0);
        v.extend_from_slice(stage);
        v
    };
    vec![
        (
            "set-line-coding-115200-8n1".into(),
            with(
                [0x21, 0x20, 0, 0, 0, 0, 7, 0],
                &[0x00, 0xc2, 0x01, 0x00, 0, 0, 8],
            ),
        ),
        (
            "get-line-coding".into(),
            with([0xa1, 0x21, 0, 0, 0, 0, 7, 0], &[]),
        ),
        ("dtr-rts".into(), with([0x21, 0x22, 3, 0, 0, 0, 0, 0], &[])),
        (
            "send-break".into(),
            with([0x21, 0x23, 0xff, 0xff, 0, 0, 0, 0], &[]),
        ),
    ]
}

/// Seeds for `hid_request`: what usbhid sends at enumeration and for LEDs.
pub fn hid_request() -> Vec<Seed> {
    let with = |setup: [u8; 8]| {
        let mut v = setup.to_vec();
        v.push(0);
        v
    };
    vec![
        ("set-idle".into(), with([0x21, 0x0a, 0, 0, 0, 0, 0, 0])),
        (
            "get-report-descriptor".into(),
            with([0x81, 0x06, 0, 0x22, 0, 0, 0x3f, 0]),
        ),
        (
            "set-report-led".into(),
            with([0x21, 0x09, 0, 2, 0, 0, 1, 0]),
        ),
        ("get-protocol".into(), with([0xa1, 0x03, 0, 0, 0, 0, 1, 0])),
    ]
}

/// Seeds for `hid_command`: FIFO lines (the first byte picks the report length).
pub fn hid_command() -> Vec<Seed> {
    let with = |len: u8, line: &str| {
        let mut v = vec![len];
        v.extend_from_slice(line.as_bytes());
        v
    };
    vec![
        ("type-hello".into(), with(7, "type Hello, World!")),
        ("report".into(), with(7, "report 01 00 05 06 07 08 09 0a")),
    ]
}

/// Seeds for `usbredir_codec`: the first byte picks the guest's capabilities, the rest is
/// what the guest sends (a usb-redir hello with QEMU's capabilities, then nothing).
pub fn usbredir_codec() -> Vec<Seed> {
    vec![
        ("hello-caps-0".into(), vec![0]),
        ("hello-caps-ff".into(), vec![0xfe]),
    ]
}
