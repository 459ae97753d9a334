//! The full stack over real loopback TCP: our USB/IP client against our server exporting
//! Gadget Zero (and a device whose IN endpoint has nothing to send).

#![allow(clippy::cast_possible_truncation)] // test patterns and sizes are small by construction

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use usbfn::BusSpeed;
use usbfn::functions::gadget_zero;
use usbfn_usbip::client::{self, ClientError, Urb};
use usbfn_usbip::proto::errno;
use usbfn_wire::{Direction, FeatureSelector, Recipient, SetupPacket};

mod common;
use common::{Fixture, Setup, vendor};

async fn start(speed: BusSpeed, pattern: gadget_zero::Pattern) -> Fixture {
    common::start(Setup {
        speed: Some(speed),
        gadget_zero: gadget_zero::Options {
            pattern,
            ..Default::default()
        },
        ..Setup::default()
    })
    .await
}

#[tokio::test]
async fn list_import_enumerate_and_stream() {
    let fx = start(BusSpeed::High, gadget_zero::Pattern::Mod63).await;
    let devices = client::list_devices(fx.addr).await.expect("list");
    assert_eq!(devices.len(), 2);
    assert_eq!(
        (devices[0].device.id_vendor, devices[0].device.id_product),
        (0x0525, 0xa4a0)
    );
    assert_eq!(devices[0].device.busid.as_str(), "1-1");
    assert_eq!(devices[0].interfaces.len(), 1);

    let dev = fx.import("1-1").await;
    let tree = dev.enumerate(Some(1)).await.expect("enumerate");
    assert_eq!(tree.device.id_product, 0xa4a0);
    assert_eq!(
        tree.strings.get(&tree.device.i_product).map(String::as_str),
        Some("Gadget Zero")
    );
    let eps = &tree.configurations[0].tree.interfaces[0].endpoints;
    // Bulk IN/OUT and interrupt IN/OUT in alternate setting 0.
    assert_eq!(eps.len(), 4);
    let bulk: Vec<_> = eps
        .iter()
        .filter(|e| e.descriptor.transfer_type() == usbfn_wire::TransferType::Bulk)
        .collect();
    assert_eq!(bulk.len(), 2);
    assert!(bulk.iter().all(|e| e.descriptor.w_max_packet_size == 512));

    // Bulk IN in pattern 1, several sizes around the packet size.
    for len in [512u32, 1024, 4096, 65536] {
        let c = dev
            .submit(Urb::bulk_in(1, len))
            .await
            .expect("submit")
            .into_result()
            .expect("ok");
        assert_eq!(c.data.len(), len as usize);
        let expected: Vec<u8> = (0..len as usize).map(|i| ((i % 512) % 63) as u8).collect();
        assert_eq!(&c.data[..], &expected[..], "IN {len}");
    }
    // A buffer that is not a multiple of 512 meets a full packet: babble, as the kernel's gadget.
    let c = dev.submit(Urb::bulk_in(1, 1000)).await.expect("submit");
    assert_eq!(c.status, -errno::EOVERFLOW);
    assert_eq!(c.data.len(), 1000);

    // Bulk OUT, pattern 1, full and short transfers.
    for len in [512usize, 4096, 1000, 1] {
        let data: Vec<u8> = (0..len).map(|i| ((i % 512) % 63) as u8).collect();
        let c = dev.submit(Urb::bulk_out(1, data)).await.expect("submit");
        assert_eq!((c.status, c.actual_length), (0, len as u32), "OUT {len}");
    }
    fx.shutdown().await;
}

#[tokio::test]
async fn vendor_control_write_and_read_back() {
    let fx = start(BusSpeed::High, gadget_zero::Pattern::Zeros).await;
    let dev = fx.import("1-1").await;
    dev.set_configuration(1).await.expect("configure");
    let data: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
    dev.control_out(vendor(Direction::Out, 0x5b, 300), Bytes::from(data.clone()))
        .await
        .expect("write");
    let back = dev
        .control_in(vendor(Direction::In, 0x5c, 300))
        .await
        .expect("read");
    assert_eq!(&back[..], &data[..]);
    // wLength 0 in both directions.
    dev.control_out(vendor(Direction::Out, 0x5b, 0), Bytes::new())
        .await
        .expect("empty write");
    let empty = dev
        .control_in(vendor(Direction::In, 0x5c, 0))
        .await
        .expect("empty read");
    assert!(empty.is_empty());
    // Too long, and unknown requests, stall.
    let err = dev
        .control_in(vendor(Direction::In, 0x5c, 4097))
        .await
        .expect_err("too long");
    assert!(err.is_stall(), "{err}");
    let err = dev
        .control_in(vendor(Direction::In, 0x42, 8))
        .await
        .expect_err("unknown");
    assert!(err.is_stall(), "{err}");
    fx.shutdown().await;
}

#[tokio::test]
async fn halt_and_clear_halt() {
    let fx = start(BusSpeed::High, gadget_zero::Pattern::Zeros).await;
    let dev = fx.import("1-1").await;
    dev.set_configuration(1).await.expect("configure");
    let halt = SetupPacket::set_feature(Recipient::Endpoint, FeatureSelector::ENDPOINT_HALT, 0x81);
    dev.control_out(halt, Bytes::new()).await.expect("set halt");
    let c = dev.submit(Urb::bulk_in(1, 512)).await.expect("submit");
    assert_eq!(c.status, -errno::EPIPE);
    let status = SetupPacket::get_status(Recipient::Endpoint, 0x81);
    assert_eq!(&dev.control_in(status).await.expect("status")[..], &[1, 0]);
    dev.clear_halt(0x81).await.expect("clear");
    assert_eq!(&dev.control_in(status).await.expect("status")[..], &[0, 0]);
    dev.submit(Urb::bulk_in(1, 512))
        .await
        .expect("submit")
        .into_result()
        .expect("flows again");
    fx.shutdown().await;
}

#[tokio::test]
async fn pending_in_waits_and_unlinks() {
    let fx = start(BusSpeed::High, gadget_zero::Pattern::Zeros).await;
    let dev = fx.import("1-2").await;
    dev.set_configuration(1).await.expect("configure");
    let pending = dev.submit_handle(Urb::bulk_in(1, 512)).expect("submit");
    let seqnum = pending.seqnum();
    // Meanwhile the control pipe keeps flowing.
    let status = SetupPacket::get_status(Recipient::Device, 0);
    dev.control_in(status)
        .await
        .expect("control while IN pending");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        dev.outstanding(),
        1,
        "the IN URB is still pending (NAK), not answered empty"
    );
    assert_eq!(
        dev.unlink(seqnum).await.expect("unlink"),
        -errno::ECONNRESET
    );
    let given_back = pending.wait().await.expect("given back by the RET_UNLINK");
    assert_eq!(
        given_back.status,
        -errno::ECONNRESET,
        "no RET_SUBMIT came for the unlinked URB"
    );
    // Unlinking something already answered gives 0.
    let c = dev
        .submit_handle(Urb::control_in(status.to_bytes(), 2))
        .expect("submit");
    let s = c.seqnum();
    c.wait().await.expect("done");
    assert_eq!(dev.unlink(s).await.expect("unlink"), 0);
    assert!(dev.connection_error().is_none());
    fx.shutdown().await;
}

#[tokio::test]
async fn busy_unknown_and_reimport() {
    let fx = start(BusSpeed::High, gadget_zero::Pattern::Zeros).await;
    let dev = fx.import("1-1").await;
    let err = client::import(fx.addr, "1-1").await.expect_err("busy");
    assert!(matches!(err, ClientError::DeviceBusy { .. }), "{err}");
    let err = client::import(fx.addr, "9-9").await.expect_err("unknown");
    assert!(matches!(err, ClientError::NoSuchDevice { .. }), "{err}");
    drop(dev);
    // The server notices the close; then the device imports again.
    let mut again = None;
    for _ in 0..50 {
        match client::import(fx.addr, "1-1").await {
            Ok(d) => {
                again = Some(d);
                break;
            }
            Err(ClientError::DeviceBusy { .. }) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("re-import failed: {e}"),
        }
    }
    let dev = again.expect("re-imported");
    dev.enumerate(Some(1)).await.expect("enumerates again");
    dev.submit(Urb::bulk_in(1, 512))
        .await
        .expect("submit")
        .into_result()
        .expect("ok");
    fx.shutdown().await;
}

#[tokio::test]
async fn superspeed_and_full_speed_exports() {
    for (speed, mps, usbip_speed) in [(BusSpeed::Super, 1024, 5), (BusSpeed::Full, 64, 2)] {
        let fx = start(speed, gadget_zero::Pattern::Zeros).await;
        let dev = fx.import("1-1").await;
        assert_eq!(dev.device().speed.0, usbip_speed);
        let tree = dev.enumerate(Some(1)).await.expect("enumerate");
        let ep = &tree.configurations[0].tree.interfaces[0].endpoints[0];
        assert_eq!(ep.descriptor.w_max_packet_size, mps);
        assert_eq!(ep.companion.is_some(), speed == BusSpeed::Super);
        dev.submit(Urb::bulk_in(1, 4096))
            .await
            .expect("submit")
            .into_result()
            .expect("ok");
        fx.shutdown().await;
    }
}

async fn raw_import(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut req = BytesMut::new();
    req.put_u16(0x0111);
    req.put_u16(0x8003);
    req.put_u32(0);
    let mut busid = [0u8; 32];
    busid[..3].copy_from_slice(b"1-1");
    req.put_slice(&busid);
    s.write_all(&req).await.expect("write");
    let mut reply = [0u8; 8 + 312];
    s.read_exact(&mut reply).await.expect("import reply");
    assert_eq!(&reply[4..8], &[0, 0, 0, 0], "import OK");
    s
}

async fn expect_closed(mut s: TcpStream) {
    let mut sink = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink))
        .await
        .expect("server closes");
    assert!(r.is_ok() || r.is_err(), "closed");
}

#[tokio::test]
async fn malformed_and_oversized_input_close_only_that_connection() {
    let fx = start(BusSpeed::High, gadget_zero::Pattern::Zeros).await;
    // Garbage in the op phase.
    let mut s = TcpStream::connect(fx.addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.expect("write");
    expect_closed(s).await;
    // An unknown command after import.
    let mut s = raw_import(fx.addr).await;
    s.write_all(&[0xde, 0xad, 0xbe, 0xef].repeat(12))
        .await
        .expect("write");
    expect_closed(s).await;
    // A CMD_SUBMIT claiming a 4 GiB OUT buffer.
    let mut s = raw_import(fx.addr).await;
    let mut cmd = BytesMut::new();
    for v in [1u32, 1, 0x0001_0002, 0, 1, 0, 0xffff_fff0, 0, 0, 0] {
        cmd.put_u32(v);
    }
    cmd.put_slice(&[0u8; 8]);
    s.write_all(&cmd).await.expect("write");
    expect_closed(s).await;
    // Half a header, then silence: closing our side ends it cleanly.
    let mut s = raw_import(fx.addr).await;
    s.write_all(&[0, 0, 0, 1, 0, 0]).await.expect("write");
    drop(s);
    // The server still serves, and the device imports again.
    let mut dev = None;
    for _ in 0..50 {
        match client::import(fx.addr, "1-1").await {
            Ok(d) => {
                dev = Some(d);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let dev = dev.expect("imports after the bad peers");
    dev.enumerate(Some(1)).await.expect("enumerate");
    fx.shutdown().await;
}
