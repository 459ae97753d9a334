//! A DHCP server for one address pool: the subset of RFC 2131 a USB network adapter needs to
//! give the one host at the other end of the cable an address.
//!
//! Why hand-written: smoltcp has a DHCP *client* socket and the DHCP wire format
//! (`smoltcp::wire::DhcpPacket`/`DhcpRepr`, used here for every byte in and out) but no
//! server, and the maintained server crates are whole daemons that bind OS sockets. What is
//! left — the lease table and the four message exchanges below — is a small state machine
//! with no I/O, tested with byte vectors.
//!
//! What it does:
//! * DHCPDISCOVER → DHCPOFFER of the client's current lease, else its requested address when
//!   free, else the lowest free address of the pool;
//! * DHCPREQUEST (selecting, init-reboot, renewing, rebinding) → DHCPACK when the address is
//!   in the pool and not leased to another client, else DHCPNAK; a request naming another
//!   server is ignored;
//! * DHCPRELEASE frees the lease, DHCPDECLINE marks the address unusable for one lease time;
//! * DHCPINFORM → DHCPACK with the options and no address.
//!
//! Replies are broadcast (255.255.255.255:68) unless the client has an address (`ciaddr`),
//! which RFC 2131 §4.1 allows and every client accepts: the device cannot answer ARP for an
//! address the client does not hold yet. Not done: relay agents (`giaddr` other than 0 is
//! ignored), option overload, static reservations, more than one pool.
//!
//! Bounds: the table holds at most one entry per pool address (at most
//! [`MAX_POOL_ADDRESSES`]); a client with an expired lease loses it to the next client.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use smoltcp::wire::{DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress};

/// The largest pool (a /16's worth).
pub const MAX_POOL_ADDRESSES: u32 = 65_534;

/// Minimum size of a BOOTP message on the wire (RFC 1542 §3.1.1); replies are padded to it.
const BOOTP_MIN_LEN: usize = 300;

/// The pool and the options handed out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpConfig {
    /// The server's own address (server identifier).
    pub server: Ipv4Addr,
    /// The subnet mask handed out.
    pub netmask: Ipv4Addr,
    /// First address of the pool.
    pub pool_start: Ipv4Addr,
    /// Last address of the pool (inclusive).
    pub pool_end: Ipv4Addr,
    /// Lease time.
    pub lease: Duration,
}

/// What the server answers, and where to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The UDP payload (a BOOTREPLY).
    pub payload: Vec<u8>,
    /// The destination address (broadcast, or the client's `ciaddr`).
    pub to: Ipv4Addr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Binding {
    /// Offered or acknowledged to this client until `until`.
    Client(EthernetAddress),
    /// Declined by a client (in use by someone we do not know) until `until`.
    Declined,
}

#[derive(Clone, Copy, Debug)]
struct Lease {
    binding: Binding,
    until: Duration,
}

/// The server's state: the lease table.
#[derive(Debug)]
pub struct DhcpServer {
    config: DhcpConfig,
    leases: BTreeMap<u32, Lease>,
    acks: u64,
}

/// A request that was not answered, and why (logged at debug level, counted by the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    /// Not a well-formed DHCP message.
    #[error("not a DHCP message: {0}")]
    Malformed(String),
    /// A reply, or a message type a server does not answer.
    #[error("DHCP message type {0:?} is not for a server")]
    NotForServer(DhcpMessageType),
    /// A DHCPREQUEST for another server's offer.
    #[error("request for server {0}")]
    OtherServer(Ipv4Addr),
    /// Nothing to answer (release, decline).
    #[error("no answer needed")]
    NoAnswer,
    /// Every address of the pool is leased.
    #[error("the pool of {0} addresses is exhausted")]
    PoolExhausted(u32),
}

impl DhcpServer {
    /// A server for `config`; the pool is clamped to [`MAX_POOL_ADDRESSES`].
    pub fn new(config: DhcpConfig) -> Self {
        DhcpServer {
            config,
            leases: BTreeMap::new(),
            acks: 0,
        }
    }

    /// Leases acknowledged so far.
    pub fn acks(&self) -> u64 {
        self.acks
    }

    /// The address leased (acknowledged or offered) to `mac`, if any.
    pub fn lease_of(&self, mac: [u8; 6], now: Duration) -> Option<Ipv4Addr> {
        let mac = EthernetAddress(mac);
        self.leases
            .iter()
            .find(|(_, l)| l.binding == Binding::Client(mac) && l.until > now)
            .map(|(a, _)| Ipv4Addr::from(*a))
    }

    /// Answer one UDP payload received on port 67 at time `now` (any monotonic clock).
    pub fn handle(&mut self, payload: &[u8], now: Duration) -> Result<Reply, Ignored> {
        let packet = DhcpPacket::new_checked(payload)
            .map_err(|e| Ignored::Malformed(format!("{e} ({} bytes)", payload.len())))?;
        let request = DhcpRepr::parse(&packet).map_err(|e| Ignored::Malformed(e.to_string()))?;
        let mac = request.client_hardware_address;
        match request.message_type {
            DhcpMessageType::Discover => {
                let address = self.pick(mac, request.requested_ip, now)?;
                self.bind(address, mac, now + Duration::from_secs(60));
                Ok(self.reply(&request, DhcpMessageType::Offer, address))
            }
            DhcpMessageType::Request => {
                if let Some(server) = request.server_identifier
                    && server != self.config.server
                {
                    // The client chose another server's offer: forget ours.
                    self.release(mac);
                    return Err(Ignored::OtherServer(server));
                }
                let wanted = request
                    .requested_ip
                    .or_else(|| (!request.client_ip.is_unspecified()).then_some(request.client_ip));
                match wanted {
                    Some(address) if self.available(address, mac, now) => {
                        self.bind(address, mac, now + self.config.lease);
                        self.acks += 1;
                        Ok(self.reply(&request, DhcpMessageType::Ack, address))
                    }
                    _ => Ok(self.reply(&request, DhcpMessageType::Nak, Ipv4Addr::UNSPECIFIED)),
                }
            }
            DhcpMessageType::Release => {
                self.release(mac);
                Err(Ignored::NoAnswer)
            }
            DhcpMessageType::Decline => {
                if let Some(address) = request.requested_ip
                    && self.in_pool(address)
                {
                    self.leases.insert(
                        u32::from(address),
                        Lease {
                            binding: Binding::Declined,
                            until: now + self.config.lease,
                        },
                    );
                }
                Err(Ignored::NoAnswer)
            }
            DhcpMessageType::Inform => {
                Ok(self.reply(&request, DhcpMessageType::Ack, Ipv4Addr::UNSPECIFIED))
            }
            other => Err(Ignored::NotForServer(other)),
        }
    }

    fn pool(&self) -> (u32, u32) {
        let start = u32::from(self.config.pool_start);
        let end = u32::from(self.config.pool_end)
            .min(start.saturating_add(MAX_POOL_ADDRESSES - 1))
            .max(start);
        (start, end)
    }

    fn in_pool(&self, address: Ipv4Addr) -> bool {
        let (start, end) = self.pool();
        (start..=end).contains(&u32::from(address)) && address != self.config.server
    }

    /// Free for `mac`: in the pool and not bound to anyone else (or that binding expired).
    fn available(&self, address: Ipv4Addr, mac: EthernetAddress, now: Duration) -> bool {
        self.in_pool(address)
            && match self.leases.get(&u32::from(address)) {
                None => true,
                Some(l) => l.until <= now || l.binding == Binding::Client(mac),
            }
    }

    fn pick(
        &self,
        mac: EthernetAddress,
        requested: Option<Ipv4Addr>,
        now: Duration,
    ) -> Result<Ipv4Addr, Ignored> {
        if let Some(current) = self.lease_of(mac.0, now) {
            return Ok(current);
        }
        if let Some(r) = requested
            && self.available(r, mac, now)
        {
            return Ok(r);
        }
        let (start, end) = self.pool();
        (start..=end)
            .map(Ipv4Addr::from)
            .find(|a| self.available(*a, mac, now))
            .ok_or(Ignored::PoolExhausted(end - start + 1))
    }

    fn bind(&mut self, address: Ipv4Addr, mac: EthernetAddress, until: Duration) {
        self.release(mac);
        self.leases.insert(
            u32::from(address),
            Lease {
                binding: Binding::Client(mac),
                until,
            },
        );
    }

    fn release(&mut self, mac: EthernetAddress) {
        self.leases.retain(|_, l| l.binding != Binding::Client(mac));
    }

    fn reply(&self, request: &DhcpRepr<'_>, kind: DhcpMessageType, your_ip: Ipv4Addr) -> Reply {
        // A lease beyond u32 seconds (136 years) is the protocol's 'infinite', 0xffffffff.
        let lease = u32::try_from(self.config.lease.as_secs()).unwrap_or(u32::MAX);
        let options = kind != DhcpMessageType::Nak;
        let with_lease = kind != DhcpMessageType::Nak && !your_ip.is_unspecified();
        let repr = DhcpRepr {
            message_type: kind,
            transaction_id: request.transaction_id,
            secs: 0,
            client_hardware_address: request.client_hardware_address,
            client_ip: if kind == DhcpMessageType::Nak {
                Ipv4Addr::UNSPECIFIED
            } else {
                request.client_ip
            },
            your_ip,
            server_ip: Ipv4Addr::UNSPECIFIED,
            router: None,
            subnet_mask: options.then_some(self.config.netmask),
            relay_agent_ip: Ipv4Addr::UNSPECIFIED,
            broadcast: request.broadcast,
            requested_ip: None,
            client_identifier: None,
            server_identifier: Some(self.config.server),
            parameter_request_list: None,
            dns_servers: None,
            max_size: None,
            lease_duration: with_lease.then_some(lease),
            renew_duration: with_lease.then_some(lease / 2),
            rebind_duration: with_lease.then_some(lease / 8 * 7),
            additional_options: &[],
        };
        let mut payload = vec![0u8; repr.buffer_len().max(BOOTP_MIN_LEN)];
        let mut packet = DhcpPacket::new_unchecked(&mut payload[..]);
        if let Err(e) = repr.emit(&mut packet) {
            // The buffer is sized by `buffer_len`: emitting cannot run out of room.
            tracing::warn!(error = %e, "DHCP reply could not be written");
        }
        let to = if request.client_ip.is_unspecified() || kind == DhcpMessageType::Nak {
            Ipv4Addr::BROADCAST
        } else {
            request.client_ip
        };
        Reply { payload, to }
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];
    const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];

    fn server(pool_end: u8) -> DhcpServer {
        DhcpServer::new(DhcpConfig {
            server: Ipv4Addr::new(192, 168, 7, 1),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            pool_start: Ipv4Addr::new(192, 168, 7, 2),
            pool_end: Ipv4Addr::new(192, 168, 7, pool_end),
            lease: Duration::from_secs(3600),
        })
    }

    fn message(
        kind: DhcpMessageType,
        mac: [u8; 6],
        requested: Option<Ipv4Addr>,
        server: Option<Ipv4Addr>,
        ciaddr: Ipv4Addr,
    ) -> Vec<u8> {
        let repr = DhcpRepr {
            message_type: kind,
            transaction_id: 0x1234_5678,
            secs: 0,
            client_hardware_address: EthernetAddress(mac),
            client_ip: ciaddr,
            your_ip: Ipv4Addr::UNSPECIFIED,
            server_ip: Ipv4Addr::UNSPECIFIED,
            router: None,
            subnet_mask: None,
            relay_agent_ip: Ipv4Addr::UNSPECIFIED,
            broadcast: false,
            requested_ip: requested,
            client_identifier: Some(EthernetAddress(mac)),
            server_identifier: server,
            parameter_request_list: Some(&[1, 3, 6]),
            dns_servers: None,
            max_size: Some(576),
            lease_duration: None,
            renew_duration: None,
            rebind_duration: None,
            additional_options: &[],
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut DhcpPacket::new_unchecked(&mut buf[..]))
            .expect("fits");
        buf
    }

    fn parse(reply: &Reply) -> (DhcpMessageType, Ipv4Addr, Option<u32>) {
        let p = DhcpPacket::new_checked(&reply.payload[..]).expect("well formed");
        let r = DhcpRepr::parse(&p).expect("parses");
        assert_eq!(r.transaction_id, 0x1234_5678);
        (r.message_type, r.your_ip, r.lease_duration)
    }

    const T0: Duration = Duration::from_secs(10);

    #[test]
    fn discover_request_ack_then_renew() {
        let mut s = server(254);
        let offer = s
            .handle(
                &message(
                    DhcpMessageType::Discover,
                    MAC_A,
                    None,
                    None,
                    Ipv4Addr::UNSPECIFIED,
                ),
                T0,
            )
            .expect("offer");
        let (kind, ip, _) = parse(&offer);
        assert_eq!(
            (kind, ip),
            (DhcpMessageType::Offer, Ipv4Addr::new(192, 168, 7, 2))
        );
        assert_eq!(offer.to, Ipv4Addr::BROADCAST);
        assert!(offer.payload.len() >= BOOTP_MIN_LEN);
        let server_id = Some(Ipv4Addr::new(192, 168, 7, 1));
        let req = message(
            DhcpMessageType::Request,
            MAC_A,
            Some(ip),
            server_id,
            Ipv4Addr::UNSPECIFIED,
        );
        let ack = s.handle(&req, T0).expect("ack");
        assert_eq!(parse(&ack), (DhcpMessageType::Ack, ip, Some(3600)));
        assert_eq!(s.acks(), 1);
        assert_eq!(s.lease_of(MAC_A, T0), Some(ip));
        // Renewing: unicast with ciaddr, no server identifier, no requested address.
        let renew = message(DhcpMessageType::Request, MAC_A, None, None, ip);
        let ack = s
            .handle(&renew, T0 + Duration::from_secs(1800))
            .expect("renew");
        assert_eq!(parse(&ack).0, DhcpMessageType::Ack);
        assert_eq!(ack.to, ip);
    }

    #[test]
    fn a_second_client_gets_another_address_and_cannot_take_the_first() {
        let mut s = server(254);
        let a = Ipv4Addr::new(192, 168, 7, 2);
        let sid = Some(Ipv4Addr::new(192, 168, 7, 1));
        let u = Ipv4Addr::UNSPECIFIED;
        s.handle(
            &message(DhcpMessageType::Request, MAC_A, Some(a), sid, u),
            T0,
        )
        .expect("ack a");
        let offer = s
            .handle(
                &message(DhcpMessageType::Discover, MAC_B, Some(a), None, u),
                T0,
            )
            .expect("offer b");
        assert_eq!(parse(&offer).1, Ipv4Addr::new(192, 168, 7, 3));
        let nak = s
            .handle(
                &message(DhcpMessageType::Request, MAC_B, Some(a), sid, u),
                T0,
            )
            .expect("nak");
        assert_eq!(parse(&nak).0, DhcpMessageType::Nak);
        assert_eq!(nak.to, Ipv4Addr::BROADCAST);
        // Out of the pool and the server's own address are refused too.
        for bad in [Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(192, 168, 7, 1)] {
            let nak = s
                .handle(
                    &message(DhcpMessageType::Request, MAC_B, Some(bad), sid, u),
                    T0,
                )
                .expect("nak");
            assert_eq!(parse(&nak).0, DhcpMessageType::Nak);
        }
        // After A's lease expires, B may have it.
        let later = T0 + Duration::from_secs(3601);
        let ack = s
            .handle(
                &message(DhcpMessageType::Request, MAC_B, Some(a), sid, u),
                later,
            )
            .expect("ack");
        assert_eq!(parse(&ack), (DhcpMessageType::Ack, a, Some(3600)));
    }

    #[test]
    fn exhaustion_release_decline_and_other_servers() {
        let mut s = server(3); // .2 and .3
        let u = Ipv4Addr::UNSPECIFIED;
        let sid = Some(Ipv4Addr::new(192, 168, 7, 1));
        for (mac, last) in [(MAC_A, 2), (MAC_B, 3)] {
            let ip = Ipv4Addr::new(192, 168, 7, last);
            s.handle(
                &message(DhcpMessageType::Request, mac, Some(ip), sid, u),
                T0,
            )
            .expect("ack");
        }
        let c = [2, 0, 0, 0, 0, 0xc];
        assert_eq!(
            s.handle(&message(DhcpMessageType::Discover, c, None, None, u), T0),
            Err(Ignored::PoolExhausted(2))
        );
        assert_eq!(
            s.handle(
                &message(
                    DhcpMessageType::Release,
                    MAC_A,
                    None,
                    None,
                    Ipv4Addr::new(192, 168, 7, 2)
                ),
                T0
            ),
            Err(Ignored::NoAnswer)
        );
        let offer = s
            .handle(&message(DhcpMessageType::Discover, c, None, None, u), T0)
            .expect("offer");
        assert_eq!(parse(&offer).1, Ipv4Addr::new(192, 168, 7, 2));
        // C declines .2 (someone answers ARP for it): it is not offered again.
        let declined = Ipv4Addr::new(192, 168, 7, 2);
        assert_eq!(
            s.handle(
                &message(DhcpMessageType::Decline, c, Some(declined), sid, u),
                T0
            ),
            Err(Ignored::NoAnswer)
        );
        assert_eq!(
            s.handle(&message(DhcpMessageType::Discover, c, None, None, u), T0),
            Err(Ignored::PoolExhausted(2))
        );
        let other = Ipv4Addr::new(192, 168, 7, 200);
        assert_eq!(
            s.handle(
                &message(DhcpMessageType::Request, c, Some(declined), Some(other), u),
                T0
            ),
            Err(Ignored::OtherServer(other))
        );
    }

    #[test]
    fn inform_and_garbage() {
        let mut s = server(254);
        let ciaddr = Ipv4Addr::new(192, 168, 7, 50);
        let ack = s
            .handle(
                &message(DhcpMessageType::Inform, MAC_A, None, None, ciaddr),
                T0,
            )
            .expect("ack");
        assert_eq!(
            parse(&ack),
            (DhcpMessageType::Ack, Ipv4Addr::UNSPECIFIED, None)
        );
        assert_eq!(ack.to, ciaddr);
        assert!(matches!(s.handle(&[], T0), Err(Ignored::Malformed(_))));
        assert!(matches!(
            s.handle(&[1; 100], T0),
            Err(Ignored::Malformed(_))
        ));
        let mut offer = message(
            DhcpMessageType::Offer,
            MAC_A,
            None,
            None,
            Ipv4Addr::UNSPECIFIED,
        );
        assert!(matches!(
            s.handle(&offer, T0),
            Err(Ignored::NotForServer(_))
        ));
        // Truncated options.
        offer.truncate(241);
        assert!(s.handle(&offer, T0).is_err());
    }
}
