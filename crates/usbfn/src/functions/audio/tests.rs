//! The function against the in-process host: enumeration-time class requests, the
//! microphone's packets, the speaker's samples in the sink file and the feedback value.

use bytes::Bytes;
use usbfn_core::{BusSpeed, CompletionStatus, IsoPacket, IsoRequest, Urb, UrbId};
use usbfn_wire::{Direction, Recipient, RequestType, SetupPacket};

use super::control::{CUR, RANGE};
use super::descriptors::{MIC_CLOCK, SPEAKER_FU};
use super::*;
use crate::functions::{Function, device_config, start_all};
use crate::host::Host;
use crate::{Controller, Interface};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("usbfn-audio-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn class(dir: Direction, request: u8, value: u16, index: u16, length: u16) -> SetupPacket {
    SetupPacket::new(
        dir,
        RequestType::Class,
        Recipient::Interface,
        request,
        value,
        index,
        length,
    )
}

fn iso_urb(endpoint: u8, direction: Direction, packets: usize, len: usize, data: Bytes) -> Urb {
    Urb {
        id: UrbId(0),
        endpoint,
        direction,
        setup: None,
        buffer_len: packets * len,
        data,
        short_not_ok: false,
        zero_packet: false,
        iso: Some(IsoRequest {
            packets: (0..packets)
                .map(|i| IsoPacket {
                    offset: u32::try_from(i * len).expect("small"),
                    length: u32::try_from(len).expect("small"),
                })
                .collect(),
            start_frame: None,
        }),
    }
}

async fn set_interface(host: &Host, interface: u8, alternate: u8) {
    host.control(
        SetupPacket::set_interface(interface, alternate),
        Bytes::new(),
    )
    .await
    .expect("SET_INTERFACE");
}

/// Start the function on a controller; the host connected and configured.
async fn serve(options: Options, speed: BusSpeed) -> (Controller, Host, Vec<(u8, u8)>) {
    let functions = [Function::Audio(options)];
    let controller = Controller::new(&device_config(&functions)).expect("valid device");
    start_all(&functions, |name| {
        controller
            .open(name)
            .map_err(Box::<dyn std::error::Error>::from)
    })
    .expect("started");
    let mut ready = controller.ready_watch();
    while !*ready.borrow_and_update() {
        ready.changed().await.expect("controller alive");
    }
    let host = Host::connect(&controller, speed).expect("connect");
    host.set_configuration(1).await.expect("configured");
    // (interface number, endpoint address) of every pipe.
    let endpoints = controller.with_model(|m| {
        m.pipes()
            .iter()
            .filter(|p| p.address.0 != 0)
            .map(|p| (u8::try_from(p.function.0).unwrap_or(0xff), p.address.0))
            .collect()
    });
    (controller, host, endpoints)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_requests_and_the_microphone_stream() {
    let options = Options {
        source: SourceOption::Sine(1000.0),
        ..Options::default()
    };
    let (_controller, host, endpoints) = serve(options, BusSpeed::High).await;
    let mic_clock = u16::from(MIC_CLOCK) << 8;
    let range = host
        .control(
            class(Direction::In, RANGE, 0x0100, mic_clock, 2),
            Bytes::new(),
        )
        .await
        .expect("RANGE count");
    assert_eq!(&range[..], &[2, 0]);
    host.control(
        class(Direction::Out, CUR, 0x0100, mic_clock, 4),
        Bytes::from(44_100u32.to_le_bytes().to_vec()),
    )
    .await
    .expect("SET CUR");
    let cur = host
        .control(
            class(Direction::In, CUR, 0x0100, mic_clock, 4),
            Bytes::new(),
        )
        .await
        .expect("GET CUR");
    assert_eq!(&cur[..], &44_100u32.to_le_bytes());
    assert!(
        host.control(
            class(Direction::Out, CUR, 0x0100, mic_clock, 4),
            Bytes::from(8_000u32.to_le_bytes().to_vec()),
        )
        .await
        .is_err(),
        "an unoffered rate stalls"
    );
    let mute = host
        .control(
            class(Direction::In, CUR, 0x0100, u16::from(SPEAKER_FU) << 8, 1),
            Bytes::new(),
        )
        .await
        .expect("mute");
    assert_eq!(&mute[..], &[0]);

    // The microphone: interface 2, its only pipe IN.
    let &(_, mic) = endpoints.iter().find(|(i, _)| *i == 2).expect("mic pipe");
    assert_eq!(mic & 0x80, 0x80);
    set_interface(&host, 2, 1).await;
    let packets = 20;
    let c = host
        .submit(iso_urb(
            mic & 0x0f,
            Direction::In,
            packets,
            200,
            Bytes::new(),
        ))
        .await
        .expect("completion");
    let iso = c.iso.expect("iso results");
    let sizes: Vec<u32> = iso.packets.iter().map(|p| p.actual_length).collect();
    // 44.1 kHz, 2 × 16 bits: nine packets of 44 frames, then one of 45.
    let expect: Vec<u32> = (0..packets)
        .map(|i| if i % 10 == 9 { 180 } else { 176 })
        .collect();
    assert_eq!(sizes, expect);
    assert!(
        iso.packets
            .iter()
            .all(|p| p.status == CompletionStatus::Success)
    );
    let wav = Wav {
        format: WavFormat {
            rate: 44_100,
            channels: 2,
            bits: 16,
        },
        data: c.data.to_vec(),
    };
    assert_eq!(wav.frames(), 882);
    let a = wav::analyze(&wav);
    assert!((a.frequency - 1000.0).abs() < 5.0, "{}", a.frequency);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_speaker_writes_the_sink_and_reports_feedback() {
    let dir = temp("speaker");
    for speed in [BusSpeed::Full, BusSpeed::High] {
        // A file per run: the previous run's sink thread may still hold its file.
        let sink = dir.join(format!("sink-{speed:?}.wav"));
        let options = Options {
            sink: Some(sink.clone()),
            ..Options::default()
        };
        let (controller, host, endpoints) = serve(options, speed).await;
        let speaker: Vec<u8> = endpoints
            .iter()
            .filter(|(i, _)| *i == 1)
            .map(|(_, a)| *a)
            .collect();
        let (&out, &fb) = (
            speaker.iter().find(|a| *a & 0x80 == 0).expect("OUT"),
            speaker.iter().find(|a| *a & 0x80 != 0).expect("feedback"),
        );
        set_interface(&host, 1, 1).await;
        // Let the service queue its reads: a packet that finds none is lost, as on a device.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let format = WavFormat {
            rate: 48_000,
            channels: 2,
            bits: 16,
        };
        let data = wav::test_signal(format, 480, 0.0);
        let played = host.submit(iso_urb(
            out,
            Direction::Out,
            10,
            192,
            Bytes::from(data.clone()),
        ));
        let feedback = host.submit(iso_urb(fb & 0x0f, Direction::In, 2, 4, Bytes::new()));
        let played = played.await.expect("played");
        assert!(
            played
                .iso
                .expect("iso")
                .packets
                .iter()
                .all(|p| p.status == CompletionStatus::Success)
        );
        let fb = feedback.await.expect("feedback");
        let value: &[u8] = match speed {
            BusSpeed::Full => &[0, 0, 0x0c],
            _ => &[0, 0, 6, 0],
        };
        assert_eq!(&fb.data[..value.len()], value, "{speed:?}");
        set_interface(&host, 1, 0).await;
        // The sink thread appends what was queued; poll for it.
        let mut back = Wav::read(&sink).expect("valid at every moment");
        for _ in 0..500 {
            if back.data.len() >= data.len() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            back = Wav::read(&sink).expect("valid at every moment");
        }
        assert_eq!(back.format, format);
        assert_eq!(back.data, data, "{speed:?}");
        drop(host);
        drop(controller);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn options_and_descriptors() {
    let f = Function::parse("audio,source=sine:440,rate=44100,channels=1,bits=24,ppm=-200")
        .expect("valid");
    let Function::Audio(o) = &f else {
        panic!("audio expected")
    };
    assert_eq!(
        (o.source.clone(), o.rate, o.channels, o.bits, o.ppm),
        (SourceOption::Sine(440.0), 44_100, 1, 24, -200)
    );
    assert_eq!(o.max_packet(), 150);
    for bad in [
        "rate=32000",
        "bits=20",
        "channels=5",
        "source=sine:0",
        "ppm=9000",
    ] {
        assert!(
            matches!(
                Function::parse(&format!("audio,{bad}")),
                Err(OptionError::Value { .. })
            ),
            "{bad}"
        );
    }
    let model = usbfn_core::DeviceModel::build(&device_config(&[f])).expect("valid device");
    let set = model.descriptor_set(BusSpeed::High).expect("fits");
    let config = &set.configurations[0];
    let all: Vec<Vec<u8>> = usbfn_wire::descriptors(config)
        .map(|d| d.expect("well formed").bytes.to_vec())
        .collect();
    // The IAD over three interfaces, protocol 0x20.
    assert!(
        all.contains(&vec![8, 0x0b, 0, 3, 1, 0, 0x20, 4]) || {
            all.iter().any(|d| d[..7] == [8, 0x0b, 0, 3, 1, 0, 0x20])
        }
    );
    let endpoints: Vec<&Vec<u8>> = all.iter().filter(|d| d[1] == 5).collect();
    // Speaker OUT (async), feedback IN (usage feedback, 4 bytes), microphone IN (async).
    let attrs: Vec<(u8, u16, u8)> = endpoints
        .iter()
        .map(|d| (d[3], u16::from_le_bytes([d[4], d[5]]), d[6]))
        .collect();
    assert_eq!(attrs, [(0x05, 150, 4), (0x11, 4, 4), (0x05, 150, 4)]);
    let full = model.descriptor_set(BusSpeed::Full).expect("fits");
    let fb: Vec<Vec<u8>> = usbfn_wire::descriptors(&full.configurations[0])
        .map(|d| d.expect("well formed").bytes.to_vec())
        .filter(|d| d[1] == 5 && d[3] == 0x11)
        .collect();
    assert_eq!(fb[0][4..7], [3, 0, 1], "3-byte 10.14 feedback every frame");
}

#[tokio::test]
async fn start_errors_name_the_file() {
    let dir = temp("start");
    let missing = dir.join("missing.wav");
    let f = Function::Audio(Options {
        source: SourceOption::File(missing.clone()),
        ..Options::default()
    });
    let controller = Controller::new(&device_config(std::slice::from_ref(&f))).expect("valid");
    let interfaces: Vec<Interface> = controller.open_all().expect("open");
    let e = f.start(0, interfaces).expect_err("missing source");
    assert!(e.to_string().contains("missing.wav"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
