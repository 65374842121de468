//! DHCPv6 server logic (RFC 8415) as dpservice's `dhcpv6` node serves it: SOLICIT ->
//! ADVERTISE, REQUEST/RELEASE -> REPLY with an IA_NA holding the interface's IPv6 (infinite
//! lifetimes) and the DNS option (sent even when empty), CONFIRM -> REPLY without options.
//! On purpose unlike dpservice: the server DUID carries the port's MAC, not the client's, and
//! PXE boot-file options are not served.

use std::net::Ipv6Addr;

use super::ether::{self, MacAddr};
use super::ipv6::{self, Ipv6Header};
use super::udp::write_ipv6_udp;
use super::{GATEWAY_IPV6, PacketError, be16, be32, byte, need};

/// UDP port of the server.
pub const SERVER_PORT: u16 = 547;
/// UDP port of the client.
pub const CLIENT_PORT: u16 = 546;
/// Infinite lifetime / T1 / T2.
pub const INFINITE: u32 = 0xffff_ffff;

/// Message types used here.
pub const SOLICIT: u8 = 1;
pub const ADVERTISE: u8 = 2;
pub const REQUEST: u8 = 3;
pub const CONFIRM: u8 = 4;
pub const REPLY: u8 = 7;
pub const RELEASE: u8 = 8;

/// Option codes used here.
pub const OPT_CLIENT_ID: u16 = 1;
pub const OPT_SERVER_ID: u16 = 2;
pub const OPT_IA_NA: u16 = 3;
pub const OPT_IAADDR: u16 = 5;
pub const OPT_STATUS_CODE: u16 = 13;
pub const OPT_RAPID_COMMIT: u16 = 14;
pub const OPT_DNS_SERVERS: u16 = 23;

/// Status code: success.
pub const STATUS_SUCCESS: u16 = 0;
/// Status code: no addresses available.
pub const STATUS_NO_ADDRS_AVAIL: u16 = 2;

// dpservice's DUID-LL hardware type (not an IANA one).
const DUID_LL: u16 = 3;
const DUID_HW_TYPE: u16 = 0xabcd;

/// A parsed DHCPv6 client/server message whose options have been validated.
#[derive(Debug, Clone, Copy)]
pub struct Dhcpv6View<'a> {
    buf: &'a [u8],
}

impl<'a> Dhcpv6View<'a> {
    /// Views a message (the UDP payload); relay messages are not supported.
    pub fn parse(buf: &'a [u8]) -> Result<Self, PacketError> {
        need(buf, 4, "dhcpv6")?;
        let view = Self { buf };
        for o in view.options() {
            o?;
        }
        Ok(view)
    }
    /// Message type.
    pub fn kind(&self) -> u8 {
        byte(self.buf, 0)
    }
    /// 24-bit transaction id.
    pub fn transaction_id(&self) -> u32 {
        be32(self.buf, 0) & 0x00ff_ffff
    }
    /// Top-level options.
    pub fn options(&self) -> Dhcpv6Options<'a> {
        Dhcpv6Options::new(self.buf.get(4..).unwrap_or(&[]))
    }
    /// The first top-level option `code`.
    pub fn option(&self, code: u16) -> Option<&'a [u8]> {
        self.options()
            .filter_map(Result::ok)
            .find(|(c, _)| *c == code)
            .map(|(_, d)| d)
    }
}

/// Iterator over DHCPv6 options (code, data); an option running past the end is an error.
#[derive(Debug, Clone)]
pub struct Dhcpv6Options<'a> {
    rest: &'a [u8],
}

impl<'a> Dhcpv6Options<'a> {
    /// Iterates over the options encoded in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { rest: buf }
    }
}

impl<'a> Iterator for Dhcpv6Options<'a> {
    type Item = Result<(u16, &'a [u8]), PacketError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let len = usize::from(be16(self.rest, 2));
        let Some(data) = self.rest.get(4..4 + len) else {
            self.rest = &[];
            return Some(Err(PacketError::BadLength {
                field: "dhcpv6.options.length",
                value: len,
            }));
        };
        let code = be16(self.rest, 0);
        self.rest = self.rest.get(4 + len..).unwrap_or(&[]);
        Some(Ok((code, data)))
    }
}

/// What the server hands out on one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dhcpv6Config {
    /// The interface's IPv6 (None: every Solicit/Request gets NoAddrsAvail).
    pub ipv6: Option<Ipv6Addr>,
    /// DNS servers for option 23.
    pub dns: Vec<Ipv6Addr>,
}

/// What was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dhcpv6Reply {
    /// ADVERTISE or REPLY.
    pub kind: u8,
    /// The address handed out, if any.
    pub address: Option<Ipv6Addr>,
}

fn put_option(out: &mut Vec<u8>, code: u16, data: &[u8]) {
    out.extend_from_slice(&code.to_be_bytes());
    // Every option built here is far below 64 KiB; the client ID is bounded by its request.
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

fn put_status(out: &mut Vec<u8>, code: u16) {
    put_option(out, OPT_STATUS_CODE, &code.to_be_bytes());
}

/// Appends the reply to the DHCPv6 message `request`. `Ok(None)`: a valid message that gets
/// no answer (Renew, Rebind, server messages, a Request for another server).
pub fn reply(
    request: &[u8],
    cfg: &Dhcpv6Config,
    server_mac: MacAddr,
    out: &mut Vec<u8>,
) -> Result<Option<Dhcpv6Reply>, PacketError> {
    let req = Dhcpv6View::parse(request)?;
    let mut duid = [0u8; 10];
    duid[..2].copy_from_slice(&DUID_LL.to_be_bytes());
    duid[2..4].copy_from_slice(&DUID_HW_TYPE.to_be_bytes());
    duid[4..].copy_from_slice(&server_mac.0);
    let kind = match req.kind() {
        SOLICIT => ADVERTISE,
        REQUEST | RELEASE | CONFIRM => REPLY,
        _ => return Ok(None),
    };
    if req.kind() == REQUEST && req.option(OPT_SERVER_ID).is_some_and(|s| s != duid) {
        return Ok(None);
    }
    let xid = req.transaction_id().to_be_bytes();
    let start = out.len();
    out.extend_from_slice(&[kind, xid[1], xid[2], xid[3]]);
    if req.kind() == CONFIRM {
        return Ok(Some(Dhcpv6Reply {
            kind,
            address: None,
        }));
    }
    let Some(addr) = cfg.ipv6 else {
        out.truncate(start);
        out.extend_from_slice(&[REPLY, xid[1], xid[2], xid[3]]);
        put_status(out, STATUS_NO_ADDRS_AVAIL);
        return Ok(Some(Dhcpv6Reply {
            kind: REPLY,
            address: None,
        }));
    };
    put_option(out, OPT_SERVER_ID, &duid);
    if let Some(client_id) = req.option(OPT_CLIENT_ID) {
        put_option(out, OPT_CLIENT_ID, client_id);
    }
    if kind == ADVERTISE && req.option(OPT_RAPID_COMMIT).is_some() {
        put_option(out, OPT_RAPID_COMMIT, &[]);
    }
    let iaid = req
        .option(OPT_IA_NA)
        .and_then(|ia| ia.get(..4))
        .unwrap_or(&[0; 4]);
    // IA_NA: IAID, T1, T2, then IAADDR (address, preferred, valid, status Success).
    out.extend_from_slice(&OPT_IA_NA.to_be_bytes());
    out.extend_from_slice(&(12u16 + 4 + 24 + 6).to_be_bytes());
    out.extend_from_slice(iaid);
    out.extend_from_slice(&INFINITE.to_be_bytes());
    out.extend_from_slice(&INFINITE.to_be_bytes());
    out.extend_from_slice(&OPT_IAADDR.to_be_bytes());
    out.extend_from_slice(&(24u16 + 6).to_be_bytes());
    out.extend_from_slice(&addr.octets());
    out.extend_from_slice(&INFINITE.to_be_bytes());
    out.extend_from_slice(&INFINITE.to_be_bytes());
    put_status(out, STATUS_SUCCESS);
    out.extend_from_slice(&OPT_DNS_SERVERS.to_be_bytes());
    out.extend_from_slice(&((cfg.dns.len() * 16) as u16).to_be_bytes());
    for d in &cfg.dns {
        out.extend_from_slice(&d.octets());
    }
    Ok(Some(Dhcpv6Reply {
        kind,
        address: Some(addr),
    }))
}

/// Appends the full reply frame: Ethernet (`server_mac` -> `client_mac`), IPv6 fe80::1 ->
/// `client_ip`, UDP 547 -> 546. On `Ok(None)` or an error nothing is appended.
pub fn write_reply_frame(
    out: &mut Vec<u8>,
    server_mac: MacAddr,
    client_mac: MacAddr,
    client_ip: Ipv6Addr,
    request: &[u8],
    cfg: &Dhcpv6Config,
) -> Result<Option<Dhcpv6Reply>, PacketError> {
    let start = out.len();
    ether::write_header(out, client_mac, server_mac, ether::ETHERTYPE_IPV6);
    let ip = Ipv6Header::new(GATEWAY_IPV6, client_ip, ipv6::NEXT_UDP, 64);
    let mut result = Ok(None);
    write_ipv6_udp(out, &ip, SERVER_PORT, CLIENT_PORT, |o| {
        result = reply(request, cfg, server_mac, o);
    });
    if !matches!(result, Ok(Some(_))) {
        out.truncate(start);
    }
    result
}

#[cfg(test)]
#[path = "dhcpv6_tests.rs"]
mod tests;
