//! DHCPv4 server logic as dpservice's `dhcp` node serves it: DISCOVER -> OFFER and
//! REQUEST -> ACK with the interface's address as a /32 lease, classless static routes via the
//! gateway, infinite lease time, MTU, DNS servers and hostname. Differences from dpservice,
//! on purpose: the router option (3) is always sent (dpservice sends it only to PXE clients;
//! RFC 3442 clients ignore it beside option 121), a REQUEST for another address gets a NAK
//! (dpservice ACKs it), a REQUEST naming another server id is ignored, and PXE is not served.

use std::net::Ipv4Addr;

use super::ether::{self, MacAddr};
use super::ipv4::{self, Ipv4Header};
use super::udp::write_ipv4_udp;
use super::{GATEWAY_IPV4, PacketError, array, be16, be32, byte, ipv4_at, need};

/// UDP port of the server.
pub const SERVER_PORT: u16 = 67;
/// UDP port of the client.
pub const CLIENT_PORT: u16 = 68;
/// Lease time sent: infinite.
pub const LEASE_INFINITE: u32 = 0xffff_ffff;

const FIXED_LEN: usize = 236;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;

const OPT_PAD: u8 = 0;
const OPT_SUBNET_MASK: u8 = 1;
const OPT_ROUTER: u8 = 3;
const OPT_DNS: u8 = 6;
const OPT_HOSTNAME: u8 = 12;
const OPT_MTU: u8 = 26;
const OPT_REQUESTED_IP: u8 = 50;
const OPT_LEASE_TIME: u8 = 51;
const OPT_MESSAGE_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_CLASSLESS_ROUTES: u8 = 121;
const OPT_END: u8 = 255;

/// DHCP message types (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
    Inform = 8,
}

impl MessageType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            4 => Self::Decline,
            5 => Self::Ack,
            6 => Self::Nak,
            7 => Self::Release,
            8 => Self::Inform,
            _ => return None,
        })
    }
}

/// A parsed DHCP message whose options have all been validated.
#[derive(Debug, Clone, Copy)]
pub struct DhcpView<'a> {
    buf: &'a [u8],
}

impl<'a> DhcpView<'a> {
    /// Views a DHCP message (the UDP payload), checking the magic cookie and that every
    /// option's length stays inside the message.
    pub fn parse(buf: &'a [u8]) -> Result<Self, PacketError> {
        need(buf, FIXED_LEN + MAGIC.len(), "dhcp")?;
        if array::<4>(buf, FIXED_LEN) != MAGIC {
            return Err(PacketError::Unsupported {
                field: "dhcp.magic_cookie",
                value: be32(buf, FIXED_LEN),
            });
        }
        let view = Self { buf };
        for option in view.options() {
            option?;
        }
        Ok(view)
    }

    /// Op (1 request, 2 reply).
    pub fn op(&self) -> u8 {
        byte(self.buf, 0)
    }
    /// Transaction id.
    pub fn xid(&self) -> u32 {
        be32(self.buf, 4)
    }
    /// Flags (bit 15: broadcast).
    pub fn flags(&self) -> u16 {
        be16(self.buf, 10)
    }
    /// Client address (set when renewing).
    pub fn ciaddr(&self) -> Ipv4Addr {
        ipv4_at(self.buf, 12)
    }
    /// "Your" address.
    pub fn yiaddr(&self) -> Ipv4Addr {
        ipv4_at(self.buf, 16)
    }
    /// Server address.
    pub fn siaddr(&self) -> Ipv4Addr {
        ipv4_at(self.buf, 20)
    }
    /// Relay address.
    pub fn giaddr(&self) -> Ipv4Addr {
        ipv4_at(self.buf, 24)
    }
    /// The 16-byte client hardware address field.
    pub fn chaddr(&self) -> [u8; 16] {
        array(self.buf, 28)
    }
    /// The client MAC (first 6 bytes of chaddr).
    pub fn client_mac(&self) -> MacAddr {
        MacAddr(array(self.buf, 28))
    }
    /// Iterates over the options (code, data), pads skipped, up to the end option.
    pub fn options(&self) -> DhcpOptions<'a> {
        DhcpOptions {
            rest: self.buf.get(FIXED_LEN + MAGIC.len()..).unwrap_or(&[]),
        }
    }
    /// The data of the first option `code`.
    pub fn option(&self, code: u8) -> Option<&'a [u8]> {
        self.options()
            .filter_map(Result::ok)
            .find(|(c, _)| *c == code)
            .map(|(_, d)| d)
    }
    /// The message type (option 53), if present and known.
    pub fn message_type(&self) -> Option<MessageType> {
        match self.option(OPT_MESSAGE_TYPE) {
            Some([t]) => MessageType::from_u8(*t),
            _ => None,
        }
    }
    /// An option holding exactly one IPv4 address.
    pub fn option_ipv4(&self, code: u8) -> Option<Ipv4Addr> {
        match self.option(code) {
            Some(d) if d.len() == 4 => Some(ipv4_at(d, 0)),
            _ => None,
        }
    }
}

/// Iterator over DHCP options; a length running past the message is an error.
#[derive(Debug, Clone)]
pub struct DhcpOptions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for DhcpOptions<'a> {
    type Item = Result<(u8, &'a [u8]), PacketError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.rest.first() {
                None | Some(&OPT_END) => {
                    self.rest = &[];
                    return None;
                }
                Some(&OPT_PAD) => self.rest = self.rest.get(1..).unwrap_or(&[]),
                Some(&code) => {
                    let len = self.rest.get(1).map(|l| usize::from(*l));
                    let data = len.and_then(|l| self.rest.get(2..2 + l));
                    let Some(data) = data else {
                        self.rest = &[];
                        return Some(Err(PacketError::BadLength {
                            field: "dhcp.options.length",
                            value: len.unwrap_or(0),
                        }));
                    };
                    self.rest = self.rest.get(2 + data.len()..).unwrap_or(&[]);
                    return Some(Ok((code, data)));
                }
            }
        }
    }
}

/// Invalid DHCP server configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("dhcp.mtu: must be 68 to 1500, got {0}")]
    Mtu(u16),
    #[error("dhcp.hostname: must be 1 to 63 bytes, got {0}")]
    Hostname(usize),
    #[error("dhcp.dns: at most 63 servers, got {0}")]
    Dns(usize),
}

/// What the server hands out on one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    ipv4: Option<Ipv4Addr>,
    mtu: u16,
    dns: Vec<Ipv4Addr>,
    hostname: Option<String>,
}

impl DhcpConfig {
    /// Validates a configuration; `ipv4` None (or 0.0.0.0) means the interface has no IPv4
    /// and DHCP goes unanswered, as in dpservice.
    pub fn new(
        ipv4: Option<Ipv4Addr>,
        mtu: u16,
        dns: Vec<Ipv4Addr>,
        hostname: Option<String>,
    ) -> Result<Self, ConfigError> {
        if !(68..=1500).contains(&mtu) {
            return Err(ConfigError::Mtu(mtu));
        }
        if let Some(h) = &hostname
            && (h.is_empty() || h.len() > 63)
        {
            return Err(ConfigError::Hostname(h.len()));
        }
        if dns.len() > 63 {
            return Err(ConfigError::Dns(dns.len()));
        }
        Ok(Self {
            ipv4: ipv4.filter(|a| !a.is_unspecified()),
            mtu,
            dns,
            hostname,
        })
    }

    /// A configuration that needs no validation: MTU 1500, no DNS, no hostname.
    pub fn minimal(ipv4: Option<Ipv4Addr>) -> Self {
        Self {
            ipv4: ipv4.filter(|a| !a.is_unspecified()),
            mtu: 1500,
            dns: Vec::new(),
            hostname: None,
        }
    }

    /// The leased address.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.ipv4
    }
}

/// What was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpReply {
    /// Offer, Ack or Nak.
    pub kind: MessageType,
    /// The client's MAC from chaddr (dpservice learns the VM MAC from an ACK).
    pub client_mac: MacAddr,
    /// Transaction id, copied from the request.
    pub xid: u32,
    /// The address given (0.0.0.0 for a NAK); the IP destination of the reply.
    pub yiaddr: Ipv4Addr,
}

/// Appends the reply to the DHCP message `request` (a UDP payload). `Ok(None)`: a valid
/// message that gets no answer (not a BOOTREQUEST, no or an unanswered message type, no
/// address on the interface, a REQUEST for another server).
pub fn reply(
    request: &[u8],
    cfg: &DhcpConfig,
    out: &mut Vec<u8>,
) -> Result<Option<DhcpReply>, PacketError> {
    let req = DhcpView::parse(request)?;
    let Some(vm_ip) = cfg.ipv4 else {
        return Ok(None);
    };
    if req.op() != BOOTREQUEST {
        return Ok(None);
    }
    let kind = match req.message_type() {
        Some(MessageType::Discover) => MessageType::Offer,
        Some(MessageType::Request) => {
            if req
                .option_ipv4(OPT_SERVER_ID)
                .is_some_and(|s| s != GATEWAY_IPV4)
            {
                return Ok(None);
            }
            let asked = req
                .option_ipv4(OPT_REQUESTED_IP)
                .or(Some(req.ciaddr()).filter(|a| !a.is_unspecified()));
            if asked.is_some_and(|a| a != vm_ip) {
                MessageType::Nak
            } else {
                MessageType::Ack
            }
        }
        _ => return Ok(None),
    };
    let nak = kind == MessageType::Nak;
    let zero = Ipv4Addr::UNSPECIFIED;
    let yiaddr = if nak { zero } else { vm_ip };

    out.extend_from_slice(&[BOOTREPLY, 1, 6, 0]);
    out.extend_from_slice(&req.xid().to_be_bytes());
    out.extend_from_slice(&[0, 0]); // secs
    out.extend_from_slice(&req.flags().to_be_bytes());
    out.extend_from_slice(&if nak { zero } else { req.ciaddr() }.octets());
    out.extend_from_slice(&yiaddr.octets());
    out.extend_from_slice(&if nak { zero } else { GATEWAY_IPV4 }.octets());
    out.extend_from_slice(&if nak { zero } else { GATEWAY_IPV4 }.octets());
    out.extend_from_slice(&req.chaddr());
    out.extend_from_slice(&[0; 64 + 128]); // sname, file
    out.extend_from_slice(&MAGIC);

    out.extend_from_slice(&[OPT_MESSAGE_TYPE, 1, kind as u8]);
    if !nak {
        out.extend_from_slice(&[OPT_LEASE_TIME, 4]);
        out.extend_from_slice(&LEASE_INFINITE.to_be_bytes());
    }
    out.extend_from_slice(&[OPT_SERVER_ID, 4]);
    out.extend_from_slice(&GATEWAY_IPV4.octets());
    if !nak {
        write_options(out, cfg);
    }
    out.push(OPT_END);
    Ok(Some(DhcpReply {
        kind,
        client_mac: req.client_mac(),
        xid: req.xid(),
        yiaddr,
    }))
}

fn write_options(out: &mut Vec<u8>, cfg: &DhcpConfig) {
    let gw = GATEWAY_IPV4.octets();
    // RFC 3442: 169.254.0.0/16 on-link (router 0.0.0.0), then the default via the gateway.
    out.extend_from_slice(&[OPT_CLASSLESS_ROUTES, 12, 16, 169, 254, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&gw);
    out.extend_from_slice(&[OPT_SUBNET_MASK, 4, 255, 255, 255, 255]);
    out.extend_from_slice(&[OPT_ROUTER, 4]);
    out.extend_from_slice(&gw);
    out.extend_from_slice(&[OPT_MTU, 2]);
    out.extend_from_slice(&cfg.mtu.to_be_bytes());
    if !cfg.dns.is_empty() {
        // At most 63 servers (checked in `DhcpConfig::new`), so the length fits.
        out.extend_from_slice(&[OPT_DNS, (cfg.dns.len() * 4) as u8]);
        for d in &cfg.dns {
            out.extend_from_slice(&d.octets());
        }
    }
    if let Some(h) = &cfg.hostname {
        out.extend_from_slice(&[OPT_HOSTNAME, h.len() as u8]);
        out.extend_from_slice(h.as_bytes());
    }
}

/// Appends the full reply frame: Ethernet (`server_mac` -> `client_frame_src`), IPv4
/// 169.254.0.1 -> the leased address (255.255.255.255 for a NAK), UDP 67 -> 68. On `Ok(None)`
/// or an error nothing is appended.
pub fn write_reply_frame(
    out: &mut Vec<u8>,
    server_mac: MacAddr,
    client_frame_src: MacAddr,
    request: &[u8],
    cfg: &DhcpConfig,
) -> Result<Option<DhcpReply>, PacketError> {
    // Parse first so the IP destination is known before the headers are written.
    let start = out.len();
    ether::write_header(out, client_frame_src, server_mac, ether::ETHERTYPE_IPV4);
    let mut result = Ok(None);
    let ip = Ipv4Header::new(GATEWAY_IPV4, Ipv4Addr::BROADCAST, ipv4::PROTO_UDP);
    let ip_start = out.len();
    write_ipv4_udp(out, &ip, SERVER_PORT, CLIENT_PORT, |o| {
        result = reply(request, cfg, o);
    });
    match result {
        Ok(Some(r)) => {
            if !r.yiaddr.is_unspecified() {
                patch_ipv4_dst(out, ip_start, r.yiaddr);
            }
            Ok(Some(r))
        }
        other => {
            out.truncate(start);
            other
        }
    }
}

// Rewrites the IPv4 destination of a finished IPv4/UDP packet, fixing both checksums.
fn patch_ipv4_dst(out: &mut [u8], ip_start: usize, dst: Ipv4Addr) {
    use super::checksum::update_bytes;
    let old: [u8; 4] = array(out, ip_start + 16);
    let new = dst.octets();
    let ip_sum = update_bytes(be16(out, ip_start + 10), &old, &new);
    super::put16(out, ip_start + 10, ip_sum);
    let udp = ip_start + ipv4::MIN_HEADER_LEN;
    let udp_sum = match update_bytes(be16(out, udp + 6), &old, &new) {
        0 => 0xffff,
        s => s,
    };
    super::put16(out, udp + 6, udp_sum);
    if let Some(b) = out.get_mut(ip_start + 16..ip_start + 20) {
        b.copy_from_slice(&new);
    }
}

#[cfg(test)]
#[path = "dhcp_tests.rs"]
mod tests;
