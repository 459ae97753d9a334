//! The embedded network end to end: a second smoltcp stack plays the USB host, connected to
//! the device's stack through the `HostPort` queues (what the NCM/ECM function carries).
//! It gets an address by DHCP (smoltcp's DHCP client), pings, downloads `/bytes/N` and
//! checks the pattern, and posts a body that `/stats` counts.

#![allow(clippy::cast_possible_truncation)]

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::Bytes;
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::{dhcpv4, icmp, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr,
};
use usbfn_net::{EmbeddedConfig, HostPort, Network};

#[derive(Default)]
struct Queues {
    rx: VecDeque<Bytes>,
    tx: VecDeque<Bytes>,
}
struct Rx(Bytes);
struct Tx<'a>(&'a mut VecDeque<Bytes>);
impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}
impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut v = vec![0; len];
        let r = f(&mut v);
        self.0.push_back(v.into());
        r
    }
}
impl Device for Queues {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;
    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        let f = self.rx.pop_front()?;
        Some((Rx(f), Tx(&mut self.tx)))
    }
    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.tx))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}

struct Client {
    iface: Interface,
    dev: Queues,
    sockets: SocketSet<'static>,
    port: HostPort,
    start: tokio::time::Instant,
}

impl Client {
    fn new(port: HostPort) -> Self {
        let mut dev = Queues::default();
        let mac = EthernetAddress([0x02, 0, 0, 0, 0, 0x42]);
        let iface = Interface::new(
            Config::new(HardwareAddress::Ethernet(mac)),
            &mut dev,
            Instant::ZERO,
        );
        Client {
            iface,
            dev,
            sockets: SocketSet::new(Vec::new()),
            port,
            start: tokio::time::Instant::now(),
        }
    }

    /// Move frames both ways and poll; yields to the device's task.
    async fn step(&mut self) {
        let now = Instant::from_micros(self.start.elapsed().as_micros() as i64);
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        while let Some(f) = self.dev.tx.pop_front() {
            self.port.frame_from_host(f, 1514);
        }
        match tokio::time::timeout(Duration::from_millis(5), self.port.from_network.recv()).await {
            Ok(Some(f)) => {
                self.dev.rx.push_back(f);
                while let Ok(f) = self.port.from_network.try_recv() {
                    self.dev.rx.push_back(f);
                }
            }
            Ok(None) => panic!("the device's network stopped"),
            Err(_) => {}
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn dhcp_ping_download_and_upload() {
    let (port, task) =
        usbfn_net::start(Network::Embedded(EmbeddedConfig::default())).expect("starts");
    let stats = port.stats.clone();
    let mut c = Client::new(port);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);

    // DHCP.
    let dhcp = c.sockets.add(dhcpv4::Socket::new());
    let address = loop {
        assert!(tokio::time::Instant::now() < deadline, "no DHCP lease");
        c.step().await;
        if let Some(dhcpv4::Event::Configured(config)) =
            c.sockets.get_mut::<dhcpv4::Socket<'_>>(dhcp).poll()
        {
            break config.address;
        }
    };
    assert_eq!(address.address(), Ipv4Addr::new(192, 168, 7, 2));
    assert_eq!(address.prefix_len(), 24);
    c.iface.update_ip_addrs(|a| {
        a.push(IpCidr::Ipv4(address)).expect("room");
    });
    assert_eq!(
        stats.dhcp_acks.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let device = IpAddress::Ipv4(Ipv4Addr::new(192, 168, 7, 1));

    // Ping.
    let icmp_socket = icmp::Socket::new(
        icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 1024]),
        icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 1024]),
    );
    let ping = c.sockets.add(icmp_socket);
    c.sockets
        .get_mut::<icmp::Socket<'_>>(ping)
        .bind(icmp::Endpoint::Ident(0x22))
        .expect("bind");
    let echo = Icmpv4Repr::EchoRequest {
        ident: 0x22,
        seq_no: 1,
        data: b"usbfn",
    };
    let mut sent = false;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no echo reply");
        c.step().await;
        let s = c.sockets.get_mut::<icmp::Socket<'_>>(ping);
        if !sent && s.can_send() {
            let buf = s.send(echo.buffer_len(), device).expect("room");
            echo.emit(
                &mut Icmpv4Packet::new_unchecked(buf),
                &smoltcp::phy::ChecksumCapabilities::default(),
            );
            sent = true;
        }
        if let Ok((data, _)) = s.recv() {
            let p = Icmpv4Packet::new_checked(data).expect("icmp");
            assert_eq!(p.msg_type(), smoltcp::wire::Icmpv4Message::EchoReply);
            break;
        }
    }

    // Download.
    const N: usize = 3_000_000;
    let tcp_socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 65536]),
        tcp::SocketBuffer::new(vec![0; 65536]),
    );
    let h = c.sockets.add(tcp_socket);
    c.sockets
        .get_mut::<tcp::Socket<'_>>(h)
        .connect(c.iface.context(), (device, 80), 40000)
        .expect("connect");
    let mut request_sent = false;
    let mut got = Vec::new();
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "download stalled at {} bytes",
            got.len()
        );
        c.step().await;
        let s = c.sockets.get_mut::<tcp::Socket<'_>>(h);
        if !request_sent && s.may_send() {
            s.send_slice(format!("GET /bytes/{N} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .expect("send");
            request_sent = true;
        }
        while s.can_recv() {
            s.recv(|d| {
                got.extend_from_slice(d);
                (d.len(), ())
            })
            .expect("recv");
        }
        if request_sent && !s.may_recv() {
            break;
        }
    }
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let body = &got[head_end..];
    assert_eq!(body.len(), N);
    assert!(body.iter().enumerate().all(|(i, b)| *b as usize == i % 251));

    // Upload.
    const M: usize = 200_000;
    let tcp_socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 65536]),
        tcp::SocketBuffer::new(vec![0; 65536]),
    );
    let h = c.sockets.add(tcp_socket);
    c.sockets
        .get_mut::<tcp::Socket<'_>>(h)
        .connect(c.iface.context(), (device, 80), 40001)
        .expect("connect");
    let mut out = format!("POST /sink HTTP/1.1\r\nContent-Length: {M}\r\n\r\n").into_bytes();
    out.extend(std::iter::repeat_n(7u8, M));
    let mut at = 0;
    let mut reply = Vec::new();
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "upload stalled at {at}"
        );
        c.step().await;
        let s = c.sockets.get_mut::<tcp::Socket<'_>>(h);
        if s.may_send() && at < out.len() {
            at += s.send_slice(&out[at..]).expect("send");
        }
        while s.can_recv() {
            s.recv(|d| {
                reply.extend_from_slice(d);
                (d.len(), ())
            })
            .expect("recv");
        }
        if at == out.len() && !s.may_recv() {
            break;
        }
    }
    let reply = String::from_utf8(reply).expect("text");
    assert!(reply.ends_with(&format!("received {M} bytes\n")), "{reply}");
    assert_eq!(
        stats
            .last_sink_bytes
            .load(std::sync::atomic::Ordering::Relaxed),
        M as u64
    );
    assert_eq!(
        stats
            .http_requests
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    task.abort();
}
