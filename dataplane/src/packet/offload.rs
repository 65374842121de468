//! virtio-net headers, as TAPs opened with `IFF_VNET_HDR` put them before every frame, and the
//! two halves of offload that they make possible.
//!
//! - **From a VM** ([`segment`]): with TSO and checksum offload offered, a VM's kernel hands
//!   the TAP whole TCP super-segments (up to 64 KiB, `gso_size` payload bytes per wire segment)
//!   and frames whose transport checksum is left partial. The dataplane reads one of those
//!   instead of dozens of frames, then cuts it into the wire segments the VM would have sent,
//!   checksums completed, so that the forwarder and the underlay see ordinary packets.
//! - **To a VM** ([`Coalescer`]): consecutive TCP segments of one flow that arrive in one burst
//!   are merged back into a super-segment and written once, which spares the VM's stack (and
//!   the ACKs it would send) most of the per-packet work. A segment is merged only if its
//!   checksum verifies, since the VM does not check a merged segment's payload again.
//!
//! Pure functions over bytes, like the rest of [`crate::packet`]; the TAP I/O is in
//! `crate::io::tap`. The header layout is the legacy one (`struct virtio_net_hdr`, 10 bytes,
//! host byte order: the TAP is not switched to `TUNSETVNETLE`/`BE`).

use super::checksum::{Checksum, pseudo_header_v4, pseudo_header_v6};
use super::{PacketError, be16, be32, byte, ipv4_at, ipv6_at, need, put16};
use crate::packet::ether::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use crate::packet::ipv4;
use crate::packet::tcp;

/// Length of the header before every frame.
pub const VNET_HDR_LEN: usize = 10;
/// `flags`: the transport checksum is partial (start and offset say where).
pub const F_NEEDS_CSUM: u8 = 1;
/// `gso_type`: not a super-segment.
pub const GSO_NONE: u8 = 0;
/// `gso_type`: TCP over IPv4.
pub const GSO_TCPV4: u8 = 1;
/// `gso_type`: TCP over IPv6.
pub const GSO_TCPV6: u8 = 4;
/// `gso_type` bit: the super-segment carries CWR, which only its first segment keeps.
pub const GSO_ECN: u8 = 0x80;

/// Largest IP packet a super-segment may be (the length fields are 16 bits).
const MAX_SUPER: usize = 65_535;
/// Most wire segments one super-segment may be cut into: 64 KiB in segments of TCP's
/// smallest MSS (48), rounded up; a VM asking for more is not sending TCP.
const MAX_PIECES: usize = 1400;
const ETHER_LEN: usize = ether::HEADER_LEN;
const PROTO_TCP: u8 = ipv4::PROTO_TCP;
/// Where the checksum sits in a TCP header.
const TCP_CSUM_OFFSET: u16 = 16;
/// TCP's CWR flag, which [`tcp`] does not name.
const CWR: u8 = 0x80;

/// One virtio-net header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// [`F_NEEDS_CSUM`] or 0.
    pub flags: u8,
    /// [`GSO_NONE`], [`GSO_TCPV4`], [`GSO_TCPV6`], possibly with [`GSO_ECN`].
    pub gso_type: u8,
    /// Bytes of headers (Ethernet to TCP) before the payload of a super-segment.
    pub hdr_len: u16,
    /// Payload bytes per wire segment.
    pub gso_size: u16,
    /// Where the checksummed part starts (from the Ethernet header).
    pub csum_start: u16,
    /// Where the checksum field is, from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Reads the header at the start of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self, PacketError> {
        need(buf, VNET_HDR_LEN, "vnet_hdr")?;
        let u16_at = |at: usize| u16::from_ne_bytes([byte(buf, at), byte(buf, at + 1)]);
        Ok(Self {
            flags: byte(buf, 0),
            gso_type: byte(buf, 1),
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }

    /// The header as it goes before a frame.
    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let mut out = [0u8; VNET_HDR_LEN];
        out[0] = self.flags;
        out[1] = self.gso_type;
        for (at, v) in [
            (2, self.hdr_len),
            (4, self.gso_size),
            (6, self.csum_start),
            (8, self.csum_offset),
        ] {
            out[at..at + 2].copy_from_slice(&v.to_ne_bytes());
        }
        out
    }
}

/// Where the headers of an Ethernet + IP + TCP frame are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TcpLayout {
    v4: bool,
    /// Start of the TCP header (= end of the IP header).
    tcp: usize,
    /// Start of the payload.
    payload: usize,
    /// End of the IP packet (Ethernet padding excluded).
    end: usize,
}

/// Locates the headers of a TCP frame without IPv4 options' or IPv6 extension headers' help
/// (neither is segmented or merged here); `None` if the frame is anything else.
fn tcp_layout(frame: &[u8]) -> Result<Option<TcpLayout>, PacketError> {
    need(frame, ETHER_LEN, "ether")?;
    let (v4, ip_len, end) = match be16(frame, 12) {
        ETHERTYPE_IPV4 => {
            need(frame, ETHER_LEN + ipv4::MIN_HEADER_LEN, "ipv4")?;
            let ihl = usize::from(byte(frame, ETHER_LEN) & 0x0f) * 4;
            // A fragment's TCP header (if any) does not describe the bytes that follow.
            let fragment = be16(frame, ETHER_LEN + 6) & 0x3fff != 0;
            if byte(frame, ETHER_LEN + 9) != PROTO_TCP || ihl != ipv4::MIN_HEADER_LEN || fragment {
                return Ok(None);
            }
            let total = usize::from(be16(frame, ETHER_LEN + 2));
            (true, ihl, ETHER_LEN + total)
        }
        ETHERTYPE_IPV6 => {
            need(frame, ETHER_LEN + 40, "ipv6")?;
            if byte(frame, ETHER_LEN + 6) != PROTO_TCP {
                return Ok(None);
            }
            let payload = usize::from(be16(frame, ETHER_LEN + 4));
            (false, 40, ETHER_LEN + 40 + payload)
        }
        _ => return Ok(None),
    };
    let tcp = ETHER_LEN + ip_len;
    if end > frame.len() || end < tcp + tcp::MIN_HEADER_LEN {
        return Err(PacketError::BadLength {
            field: if v4 {
                "ipv4.total_length"
            } else {
                "ipv6.payload_length"
            },
            value: end - ETHER_LEN,
        });
    }
    let tcp_len = usize::from(byte(frame, tcp + 12) >> 4) * 4;
    if tcp_len < tcp::MIN_HEADER_LEN || tcp + tcp_len > end {
        return Err(PacketError::BadLength {
            field: "tcp.data_offset",
            value: tcp_len,
        });
    }
    Ok(Some(TcpLayout {
        v4,
        tcp,
        payload: tcp + tcp_len,
        end,
    }))
}

/// The pseudo-header sum of the TCP segment at `frame[l.tcp..]` of `len` bytes.
fn pseudo(frame: &[u8], l: &TcpLayout, len: usize) -> Checksum {
    if l.v4 {
        let (src, dst) = (
            ipv4_at(frame, ETHER_LEN + 12),
            ipv4_at(frame, ETHER_LEN + 16),
        );
        pseudo_header_v4(src, dst, PROTO_TCP, len as u16)
    } else {
        let (src, dst) = (
            ipv6_at(frame, ETHER_LEN + 8),
            ipv6_at(frame, ETHER_LEN + 24),
        );
        pseudo_header_v6(&src, &dst, PROTO_TCP, len as u32)
    }
}

/// Fills the TCP checksum of the segment `frame[l.tcp..l.end]`.
fn fill_tcp_checksum(frame: &mut [u8], l: &TcpLayout) {
    put16(frame, l.tcp + 16, 0);
    let mut sum = pseudo(frame, l, l.end - l.tcp);
    if let Some(seg) = frame.get(l.tcp..l.end) {
        sum.add_bytes(seg);
    }
    put16(frame, l.tcp + 16, sum.finish());
}

/// Whether the TCP checksum of `frame[l.tcp..l.end]` verifies.
fn tcp_checksum_ok(frame: &[u8], l: &TcpLayout) -> bool {
    let mut sum = pseudo(frame, l, l.end - l.tcp);
    match frame.get(l.tcp..l.end) {
        Some(seg) => sum.add_bytes(seg),
        None => return false,
    }
    sum.fold() == 0xffff
}

/// The frames one TAP read turns into; its buffers are reused from read to read.
#[derive(Debug, Default)]
pub struct Segments {
    bufs: Vec<Vec<u8>>,
    len: usize,
}

impl Segments {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The frames, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.bufs.iter().take(self.len).map(Vec::as_slice)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    fn push_copy(&mut self, frame: &[u8]) -> &mut Vec<u8> {
        if self.len == self.bufs.len() {
            self.bufs.push(Vec::with_capacity(2048));
        }
        let i = self.len;
        self.len += 1;
        let b = &mut self.bufs[i];
        b.clear();
        b.extend_from_slice(frame);
        b
    }
}

/// Turns what a TAP read returned (`hdr`, then `frame`) into wire frames in `out`: a partial
/// checksum is completed, a TCP super-segment is cut into `gso_size` pieces with their IP
/// lengths, IPv4 identifications, sequence numbers, flags and checksums fixed. Errors name the
/// field that is inconsistent; `out` is then empty.
pub fn segment(hdr: &VnetHdr, frame: &[u8], out: &mut Segments) -> Result<(), PacketError> {
    out.clear();
    let r = segment_into(hdr, frame, out);
    if r.is_err() {
        out.clear();
    }
    r
}

fn segment_into(hdr: &VnetHdr, frame: &[u8], out: &mut Segments) -> Result<(), PacketError> {
    let kind = hdr.gso_type & !GSO_ECN;
    if kind == GSO_NONE {
        let f = out.push_copy(frame);
        if hdr.flags & F_NEEDS_CSUM != 0 {
            complete_checksum(f, hdr.csum_start, hdr.csum_offset)?;
        }
        return Ok(());
    }
    if kind != GSO_TCPV4 && kind != GSO_TCPV6 {
        return Err(PacketError::Unsupported {
            field: "vnet_hdr.gso_type",
            value: u32::from(hdr.gso_type),
        });
    }
    let Some(l) = tcp_layout(frame)? else {
        return Err(PacketError::Unsupported {
            field: "vnet_hdr.gso_type",
            value: u32::from(hdr.gso_type),
        });
    };
    if l.v4 != (kind == GSO_TCPV4) {
        return Err(PacketError::Unsupported {
            field: "vnet_hdr.gso_type",
            value: u32::from(hdr.gso_type),
        });
    }
    let mss = usize::from(hdr.gso_size);
    if mss == 0 {
        return Err(PacketError::BadLength {
            field: "vnet_hdr.gso_size",
            value: 0,
        });
    }
    let headers = &frame[..l.payload];
    let payload = &frame[l.payload..l.end];
    let seq0 = be32(frame, l.tcp + 4);
    let id0 = be16(frame, ETHER_LEN + 4);
    let flags0 = byte(frame, l.tcp + 13);
    let pieces = payload.len().div_ceil(mss).max(1);
    if pieces > MAX_PIECES {
        return Err(PacketError::BadLength {
            field: "vnet_hdr.gso_size",
            value: mss,
        });
    }
    for (i, chunk) in payload
        .chunks(mss)
        .chain(payload.is_empty().then_some(&[][..]))
        .enumerate()
    {
        let f = out.push_copy(headers);
        f.extend_from_slice(chunk);
        let seg = TcpLayout { end: f.len(), ..l };
        let last = i + 1 == pieces;
        let mut flags = flags0;
        if !last {
            flags &= !(tcp::FIN | tcp::PSH);
        }
        if i > 0 {
            flags &= !CWR;
        }
        if let Some(b) = f.get_mut(l.tcp + 13) {
            *b = flags;
        }
        let seq = seq0.wrapping_add((i * mss) as u32);
        if let Some(b) = f.get_mut(l.tcp + 4..l.tcp + 8) {
            b.copy_from_slice(&seq.to_be_bytes());
        }
        let ip_payload = (seg.end - l.tcp) as u16;
        if l.v4 {
            put16(f, ETHER_LEN + 4, id0.wrapping_add(i as u16));
            ipv4::finish_header(f, ETHER_LEN, ip_payload);
        } else {
            put16(f, ETHER_LEN + 4, ip_payload);
        }
        fill_tcp_checksum(f, &seg);
    }
    Ok(())
}

/// Completes a partial checksum: the field at `start + offset` holds the pseudo-header sum;
/// the checksum covers everything from `start` to the end of the frame.
fn complete_checksum(frame: &mut [u8], start: u16, offset: u16) -> Result<(), PacketError> {
    let (start, at) = (usize::from(start), usize::from(start) + usize::from(offset));
    if start < ETHER_LEN || at + 2 > frame.len() {
        return Err(PacketError::BadLength {
            field: "vnet_hdr.csum_start",
            value: start,
        });
    }
    // Ethernet padding must not count: cut at the IP packet's end where there is one.
    let end = match be16(frame, 12) {
        ETHERTYPE_IPV4 => ETHER_LEN + usize::from(be16(frame, ETHER_LEN + 2)),
        ETHERTYPE_IPV6 => ETHER_LEN + 40 + usize::from(be16(frame, ETHER_LEN + 4)),
        _ => frame.len(),
    }
    .min(frame.len());
    if at + 2 > end {
        return Err(PacketError::BadLength {
            field: "vnet_hdr.csum_offset",
            value: usize::from(offset),
        });
    }
    let mut sum = Checksum::new();
    sum.add_bytes(&frame[start..end]);
    let mut value = sum.finish();
    // UDP says "no checksum" with 0; a computed 0 is sent as its other form.
    if offset == 6 && value == 0 {
        value = 0xffff;
    }
    put16(frame, at, value);
    Ok(())
}

/// What makes a segment mergeable with the super-segment before it: everything that must be
/// equal, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MergeKey {
    /// Ethernet header, then the IP header with its length, identification and checksum
    /// zeroed, then the TCP header with sequence number, flags and checksum zeroed (ports,
    /// ack, window and options stay); zero after `len`. A fixed array: one per frame, on the
    /// hot path.
    headers: [u8; MAX_HEADERS],
    len: usize,
}

/// Ethernet, IPv6 and a TCP header with the most options (IPv4 options are not merged).
const MAX_HEADERS: usize = ETHER_LEN + 40 + 60;

impl MergeKey {
    fn of(frame: &[u8], l: &TcpLayout) -> Self {
        let mut headers = [0u8; MAX_HEADERS];
        let len = l.payload.min(MAX_HEADERS);
        if let (Some(to), Some(from)) = (headers.get_mut(..len), frame.get(..len)) {
            to.copy_from_slice(from);
        }
        if l.v4 {
            for at in [2, 4, 10] {
                put16(&mut headers, ETHER_LEN + at, 0);
            }
        } else {
            put16(&mut headers, ETHER_LEN + 4, 0);
        }
        for at in [4, 6] {
            put16(&mut headers, l.tcp + at, 0);
        }
        if let Some(b) = headers.get_mut(l.tcp + 13) {
            *b = 0;
        }
        put16(&mut headers, l.tcp + 16, 0);
        Self { headers, len }
    }
}

/// Addresses and ports of a TCP frame with layout `l`.
fn flow_ends<'a>(f: &'a [u8], l: &TcpLayout) -> (Option<&'a [u8]>, Option<&'a [u8]>) {
    let ip = if l.v4 {
        ETHER_LEN + 12..ETHER_LEN + 20
    } else {
        ETHER_LEN + 8..ETHER_LEN + 40
    };
    (f.get(ip), f.get(l.tcp..l.tcp + 4))
}

/// A super-segment being built.
#[derive(Debug)]
struct Open {
    key: MergeKey,
    layout: TcpLayout,
    /// Payload bytes of every segment but possibly the last.
    mss: usize,
    next_seq: u32,
    /// The IPv4 identification the next segment must carry.
    next_id: u16,
    segments: usize,
    /// A shorter or PSH segment ended it.
    closed: bool,
}

/// Merges the TCP segments of one burst of frames to one TAP into super-segments, keeping
/// each flow's order. [`Coalescer::push`] every frame, then [`Coalescer::drain`].
#[derive(Debug, Default)]
pub struct Coalescer {
    out: Vec<(VnetHdr, Vec<u8>)>,
    /// For each entry of `out`: the super-segment it can still grow into, if any.
    open: Vec<Option<Open>>,
}

impl Coalescer {
    /// An empty coalescer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Whether a super-segment is still open to its flow's next segment: one that a full-sized
    /// segment without PSH last grew, so that the sender has more of it on the way.
    pub fn growing(&self) -> bool {
        self.open.iter().flatten().any(|o| !o.closed)
    }

    /// Queues `frame`, merging it into the latest super-segment of its flow where TCP allows.
    pub fn push(&mut self, frame: Vec<u8>) {
        let Ok(Some(l)) = tcp_layout(&frame) else {
            return self.push_plain(frame);
        };
        let flags = byte(&frame, l.tcp + 13);
        let len = l.end - l.payload;
        let plain_flags = flags & !(tcp::PSH) == tcp::ACK;
        if len == 0 || !plain_flags || l.end != frame.len() || !tcp_checksum_ok(&frame, &l) {
            // Not mergeable; but it must not overtake its flow's open super-segment.
            self.close_flow(&frame, &l);
            return self.push_plain(frame);
        }
        let key = MergeKey::of(&frame, &l);
        let seq = be32(&frame, l.tcp + 4);
        let id = be16(&frame, ETHER_LEN + 4);
        let found = self
            .open
            .iter()
            .rposition(|o| o.as_ref().is_some_and(|o| o.key == key));
        if let Some(i) = found
            && let Some(o) = self.open[i].as_mut()
            && let Some((_, sup)) = self.out.get_mut(i)
        {
            let fits = sup.len() - ETHER_LEN + len <= MAX_SUPER;
            let id_ok = !l.v4 || id == o.next_id;
            if !o.closed && seq == o.next_seq && len <= o.mss && fits && id_ok {
                sup.extend_from_slice(&frame[l.payload..]);
                o.next_seq = seq.wrapping_add(len as u32);
                o.next_id = id.wrapping_add(1);
                o.segments += 1;
                if len < o.mss || flags & tcp::PSH != 0 {
                    o.closed = true;
                    if let Some(b) = sup.get_mut(l.tcp + 13) {
                        *b |= flags & tcp::PSH;
                    }
                }
                return;
            }
            // Same flow, but not the next segment: the old one grows no more.
            o.closed = true;
        }
        let open = Open {
            key,
            layout: l,
            mss: len,
            next_seq: seq.wrapping_add(len as u32),
            next_id: id.wrapping_add(1),
            segments: 1,
            closed: flags & tcp::PSH != 0,
        };
        self.out.push((VnetHdr::default(), frame));
        self.open.push(Some(open));
    }

    fn push_plain(&mut self, frame: Vec<u8>) {
        self.out.push((VnetHdr::default(), frame));
        self.open.push(None);
    }

    /// Stops growing the open super-segment of `frame`'s flow (same addresses and ports).
    fn close_flow(&mut self, frame: &[u8], l: &TcpLayout) {
        let mine = flow_ends(frame, l);
        for (o, (_, f)) in self.open.iter_mut().zip(&self.out) {
            if let Some(o) = o
                && (o.layout.v4, o.layout.tcp) == (l.v4, l.tcp)
                && !o.closed
                && flow_ends(f, l) == mine
            {
                o.closed = true;
            }
        }
    }

    /// Hands out every queued frame in order with the header to write before it: merged
    /// super-segments get their lengths fixed, a partial checksum and a GSO header; other
    /// frames a zero header.
    pub fn drain(&mut self) -> impl Iterator<Item = (VnetHdr, Vec<u8>)> + '_ {
        for ((hdr, frame), open) in self.out.iter_mut().zip(self.open.drain(..)) {
            if let Some(o) = open
                && o.segments > 1
            {
                *hdr = finish_super(frame, &o);
            }
        }
        self.out.drain(..)
    }
}

/// Fixes the IP length (and IPv4 header checksum) of a merged super-segment, leaves the
/// pseudo-header sum in the TCP checksum field, and returns its GSO header.
fn finish_super(frame: &mut [u8], o: &Open) -> VnetHdr {
    let l = TcpLayout {
        end: frame.len(),
        ..o.layout
    };
    let tcp_len = l.end - l.tcp;
    if l.v4 {
        ipv4::finish_header(frame, ETHER_LEN, tcp_len as u16);
    } else {
        put16(frame, ETHER_LEN + 4, tcp_len as u16);
    }
    let partial = pseudo(frame, &l, tcp_len).fold();
    put16(frame, l.tcp + 16, partial);
    // Merged segments carry neither CWR nor ECE ([`Coalescer::push`]): no GSO_ECN.
    VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: if l.v4 { GSO_TCPV4 } else { GSO_TCPV6 },
        hdr_len: l.payload as u16,
        gso_size: o.mss as u16,
        csum_start: l.tcp as u16,
        csum_offset: TCP_CSUM_OFFSET,
    }
}

#[cfg(test)]
#[path = "offload_tests.rs"]
pub(crate) mod tests;
