//! Sans-IO frame codec of the route protocol (metalbond protocol v1).
//!
//! A frame is a 4-byte header (version 1, big-endian u16 payload length, message type) followed
//! by a protobuf payload of at most [`MAX_PAYLOAD`] bytes. [`Decoder`] reassembles frames from
//! arbitrary byte chunks; [`encode`] appends one frame to a buffer. Neither does any I/O, so a
//! session can batch many frames into one write and decode every frame one read brought.

use bytes::{Buf, BufMut, BytesMut};
use prost::Message as _;

use crate::route::{EndOfSnapshot, Hello, Subscription, Update};

/// The only protocol version.
pub const VERSION: u8 = 1;
/// Bytes of the frame header.
pub const HEADER_LEN: usize = 4;
/// Largest payload a frame may carry: a whole frame fits in 1220 bytes, inside a 1280-byte IPv6
/// MTU with IPv6 and TCP headers.
pub const MAX_PAYLOAD: usize = 1188;
/// Largest frame on the wire.
pub const MAX_FRAME: usize = HEADER_LEN + MAX_PAYLOAD;

/// The message type byte of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// Session start: keepalive interval, server flag.
    Hello = 1,
    /// Liveness; no payload.
    Keepalive = 2,
    /// Subscribe to a VNI.
    Subscribe = 3,
    /// Unsubscribe from a VNI.
    Unsubscribe = 4,
    /// Route ADD or REMOVE.
    Update = 5,
    /// ferrinet extension: the snapshot of a VNI is complete. Only ever sent to a peer that
    /// negotiated it in HELLO; far from v1's numbers so a future v1 type cannot collide.
    EndOfSnapshot = 100,
}

impl MessageType {
    /// The type for a header byte, if it is one of the five known types.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Hello,
            2 => Self::Keepalive,
            3 => Self::Subscribe,
            4 => Self::Unsubscribe,
            5 => Self::Update,
            100 => Self::EndOfSnapshot,
            _ => return None,
        })
    }

    /// Lowercase name for logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hello => "hello",
            Self::Keepalive => "keepalive",
            Self::Subscribe => "subscribe",
            Self::Unsubscribe => "unsubscribe",
            Self::Update => "update",
            Self::EndOfSnapshot => "end-of-snapshot",
        }
    }
}

/// One decoded route protocol message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// HELLO.
    Hello(Hello),
    /// KEEPALIVE.
    Keepalive,
    /// SUBSCRIBE.
    Subscribe(Subscription),
    /// UNSUBSCRIBE.
    Unsubscribe(Subscription),
    /// UPDATE.
    Update(Update),
    /// END_OF_SNAPSHOT (ferrinet extension).
    EndOfSnapshot(EndOfSnapshot),
}

impl Message {
    /// The header type of this message.
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::Hello(_) => MessageType::Hello,
            Self::Keepalive => MessageType::Keepalive,
            Self::Subscribe(_) => MessageType::Subscribe,
            Self::Unsubscribe(_) => MessageType::Unsubscribe,
            Self::Update(_) => MessageType::Update,
            Self::EndOfSnapshot(_) => MessageType::EndOfSnapshot,
        }
    }

    fn payload_len(&self) -> usize {
        match self {
            Self::Hello(m) => m.encoded_len(),
            Self::Keepalive => 0,
            Self::Subscribe(m) | Self::Unsubscribe(m) => m.encoded_len(),
            Self::Update(m) => m.encoded_len(),
            Self::EndOfSnapshot(m) => m.encoded_len(),
        }
    }
}

/// A frame that cannot be decoded. Each of these ends the session that sent it.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The version byte is not 1.
    #[error("bad protocol version {0} (expected 1)")]
    BadVersion(u8),
    /// The length field exceeds [`MAX_PAYLOAD`].
    #[error("frame payload length {0} exceeds the maximum of {MAX_PAYLOAD}")]
    TooLong(usize),
    /// The type byte is not a known message type.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// The payload is not a valid protobuf message of the header's type.
    #[error("undecodable {kind} payload")]
    Payload {
        /// Which message the header announced.
        kind: &'static str,
        /// What prost found wrong.
        #[source]
        source: prost::DecodeError,
    },
}

/// A message that cannot be encoded into one frame.
#[derive(Debug, thiserror::Error)]
#[error("{kind} payload of {len} bytes exceeds the maximum of {MAX_PAYLOAD}")]
pub struct EncodeError {
    /// Which message was too large.
    pub kind: &'static str,
    /// Its encoded payload length.
    pub len: usize,
}

/// Appends one frame carrying `msg` to `dst`.
pub fn encode(msg: &Message, dst: &mut BytesMut) -> Result<(), EncodeError> {
    let len = msg.payload_len();
    let kind = msg.message_type();
    if len > MAX_PAYLOAD {
        return Err(EncodeError {
            kind: kind.name(),
            len,
        });
    }
    dst.reserve(HEADER_LEN + len);
    dst.put_u8(VERSION);
    // len <= MAX_PAYLOAD < u16::MAX, checked above.
    dst.put_u16(len as u16);
    dst.put_u8(kind as u8);
    // `encode_raw` cannot fail: `reserve` made room for exactly `len` more bytes.
    match msg {
        Message::Hello(m) => m.encode_raw(dst),
        Message::Keepalive => {}
        Message::Subscribe(m) | Message::Unsubscribe(m) => m.encode_raw(dst),
        Message::Update(m) => m.encode_raw(dst),
        Message::EndOfSnapshot(m) => m.encode_raw(dst),
    }
    Ok(())
}

/// Encodes one frame into a fresh buffer.
pub fn encode_to_vec(msg: &Message) -> Result<Vec<u8>, EncodeError> {
    let mut buf = BytesMut::with_capacity(HEADER_LEN + msg.payload_len());
    encode(msg, &mut buf)?;
    Ok(buf.to_vec())
}

/// Reassembles frames from a byte stream.
///
/// Feed it the bytes read from the connection (in any chunking) by appending them to a
/// [`BytesMut`], then call [`Decoder::decode`] until it returns `Ok(None)`. The decoder checks the
/// header as soon as the four header bytes are there, so a bad length is refused before any
/// payload is buffered.
#[derive(Debug, Default, Clone, Copy)]
pub struct Decoder;

impl Decoder {
    /// A new decoder.
    pub fn new() -> Self {
        Self
    }

    /// Takes one whole frame off the front of `src`, if one is complete.
    ///
    /// On error the stream is unusable (framing is lost) and the session must end.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, FrameError> {
        let Some((kind, len)) = peek_header(src)? else {
            return Ok(None);
        };
        if src.len() < HEADER_LEN + len {
            src.reserve(HEADER_LEN + len - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        let payload = src.split_to(len);
        decode_payload(kind, &payload).map(Some)
    }
}

/// Checks the header at the front of `src`; `None` while fewer than four bytes are there.
fn peek_header(src: &[u8]) -> Result<Option<(MessageType, usize)>, FrameError> {
    let [version, hi, lo, kind, ..] = *src else {
        return Ok(None);
    };
    if version != VERSION {
        return Err(FrameError::BadVersion(version));
    }
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLong(len));
    }
    let kind = MessageType::from_byte(kind).ok_or(FrameError::UnknownType(kind))?;
    Ok(Some((kind, len)))
}

/// Decodes the payload of a frame of type `kind`.
pub fn decode_payload(kind: MessageType, payload: &[u8]) -> Result<Message, FrameError> {
    let err = |source| FrameError::Payload {
        kind: kind.name(),
        source,
    };
    Ok(match kind {
        MessageType::Hello => Message::Hello(Hello::decode(payload).map_err(err)?),
        // The reference sends none; tolerate a payload rather than reset a working peer.
        MessageType::Keepalive => Message::Keepalive,
        MessageType::Subscribe => Message::Subscribe(Subscription::decode(payload).map_err(err)?),
        MessageType::Unsubscribe => {
            Message::Unsubscribe(Subscription::decode(payload).map_err(err)?)
        }
        MessageType::Update => Message::Update(Update::decode(payload).map_err(err)?),
        MessageType::EndOfSnapshot => {
            Message::EndOfSnapshot(EndOfSnapshot::decode(payload).map_err(err)?)
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::route::{Destination, NextHop};
    use proptest::prelude::*;

    fn decode_all(bytes: &[u8]) -> Result<Vec<Message>, FrameError> {
        let mut buf = BytesMut::from(bytes);
        let mut d = Decoder::new();
        let mut out = Vec::new();
        while let Some(m) = d.decode(&mut buf)? {
            out.push(m);
        }
        assert!(buf.is_empty(), "left {} bytes", buf.len());
        Ok(out)
    }

    // Byte examples from route-protocol.md (the reference client's frames).
    #[test]
    fn reference_bytes_round_trip() {
        let cases: [(&[u8], Message); 4] = [
            (
                &[0x01, 0x00, 0x02, 0x01, 0x08, 0x03],
                Message::Hello(Hello {
                    keepalive_interval: 3,
                    is_server: false,
                    ferrinet_extensions: 0,
                }),
            ),
            (
                &[0x01, 0x00, 0x04, 0x01, 0x08, 0x03, 0x10, 0x01],
                Message::Hello(Hello {
                    keepalive_interval: 3,
                    is_server: true,
                    ferrinet_extensions: 0,
                }),
            ),
            (&[0x01, 0x00, 0x00, 0x02], Message::Keepalive),
            (
                &[0x01, 0x00, 0x02, 0x03, 0x08, 0x17],
                Message::Subscribe(Subscription { vni: 23 }),
            ),
        ];
        for (bytes, msg) in cases {
            assert_eq!(encode_to_vec(&msg).unwrap(), bytes, "{msg:?}");
            assert_eq!(decode_all(bytes).unwrap(), vec![msg]);
        }
    }

    // The ferrinet extension: field 1000 has the two-byte key 0xc0 0x3e (1000 << 3 = 8000 as a
    // varint), and END_OF_SNAPSHOT is frame type 100 (0x64).
    #[test]
    fn extension_bytes_round_trip() {
        let cases: [(&[u8], Message); 3] = [
            (
                &[0x01, 0x00, 0x05, 0x01, 0x08, 0x03, 0xc0, 0x3e, 0x01],
                Message::Hello(Hello {
                    keepalive_interval: 3,
                    is_server: false,
                    ferrinet_extensions: 1,
                }),
            ),
            (
                &[
                    0x01, 0x00, 0x07, 0x01, 0x08, 0x03, 0x10, 0x01, 0xc0, 0x3e, 0x01,
                ],
                Message::Hello(Hello {
                    keepalive_interval: 3,
                    is_server: true,
                    ferrinet_extensions: 1,
                }),
            ),
            (
                &[0x01, 0x00, 0x02, 0x64, 0x08, 0x17],
                Message::EndOfSnapshot(EndOfSnapshot { vni: 23 }),
            ),
        ];
        for (bytes, msg) in cases {
            assert_eq!(encode_to_vec(&msg).unwrap(), bytes, "{msg:?}");
            assert_eq!(decode_all(bytes).unwrap(), vec![msg]);
        }
    }

    #[test]
    fn rejects_bad_header() {
        assert!(matches!(
            decode_all(&[2, 0, 0, 2]),
            Err(FrameError::BadVersion(2))
        ));
        assert!(matches!(
            decode_all(&[1, 0x04, 0xa5, 5]),
            Err(FrameError::TooLong(1189))
        ));
        assert!(matches!(
            decode_all(&[1, 0xff, 0xff, 5]),
            Err(FrameError::TooLong(65535))
        ));
        assert!(matches!(
            decode_all(&[1, 0, 0, 9]),
            Err(FrameError::UnknownType(9))
        ));
        assert!(matches!(
            decode_all(&[1, 0, 2, 5, 0x1a, 0x05]),
            Err(FrameError::Payload { kind: "update", .. })
        ));
    }

    #[test]
    fn waits_for_whole_frame() {
        let mut d = Decoder::new();
        let mut buf = BytesMut::from(&[0x01, 0x00][..]);
        assert!(d.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[0x02, 0x03, 0x08]);
        assert!(d.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[0x17, 0x01]);
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Some(Message::Subscribe(Subscription { vni: 23 }))
        );
        assert_eq!(&buf[..], &[0x01]);
    }

    #[test]
    fn refuses_oversized_encode() {
        let msg = Message::Update(Update {
            destination: Some(Destination {
                prefix: vec![0; 2000],
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(encode_to_vec(&msg).is_err());
    }

    fn arb_update() -> impl Strategy<Value = Message> {
        (
            0i32..2,
            0u32..(1 << 24),
            prop::bool::ANY,
            prop::collection::vec(any::<u8>(), 16),
            0u32..=128,
            prop::collection::vec(any::<u8>(), 16),
            any::<u32>(),
            0i32..3,
            any::<u16>(),
            any::<u16>(),
        )
            .prop_map(|(action, vni, v6, p, len, nh, tv, ty, from, to)| {
                Message::Update(Update {
                    action,
                    vni,
                    destination: Some(Destination {
                        ip_version: i32::from(v6),
                        prefix: if v6 { p } else { p[..4].to_vec() },
                        prefix_length: len,
                    }),
                    next_hop: Some(NextHop {
                        target_address: nh,
                        target_vni: tv,
                        r#type: ty,
                        nat_port_range_from: u32::from(from),
                        nat_port_range_to: u32::from(to),
                    }),
                })
            })
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (any::<u32>(), any::<bool>(), any::<u32>()).prop_map(|(k, s, x)| Message::Hello(
                Hello {
                    keepalive_interval: k,
                    is_server: s,
                    ferrinet_extensions: x,
                }
            )),
            Just(Message::Keepalive),
            any::<u32>().prop_map(|vni| Message::Subscribe(Subscription { vni })),
            any::<u32>().prop_map(|vni| Message::Unsubscribe(Subscription { vni })),
            any::<u32>().prop_map(|vni| Message::EndOfSnapshot(EndOfSnapshot { vni })),
            arb_update(),
        ]
    }

    proptest! {
        #[test]
        fn round_trip_in_any_chunking(msgs in prop::collection::vec(arb_message(), 0..40), cut in prop::collection::vec(1usize..64, 1..20)) {
            let mut wire = BytesMut::new();
            for m in &msgs {
                encode(m, &mut wire).unwrap();
            }
            let wire = wire.freeze();
            let mut d = Decoder::new();
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let mut pos = 0;
            let mut i = 0;
            while pos < wire.len() {
                let n = cut[i % cut.len()].min(wire.len() - pos);
                buf.extend_from_slice(&wire[pos..pos + n]);
                pos += n;
                i += 1;
                while let Some(m) = d.decode(&mut buf).unwrap() {
                    out.push(m);
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(out, msgs);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
            let mut buf = BytesMut::from(&bytes[..]);
            let mut d = Decoder::new();
            while let Ok(Some(_)) = d.decode(&mut buf) {}
        }

        #[test]
        fn header_then_garbage_never_panics(kind in prop_oneof![0u8..8, 98u8..102], payload in prop::collection::vec(any::<u8>(), 0..1188)) {
            let mut buf = BytesMut::new();
            buf.put_u8(1);
            buf.put_u16(payload.len() as u16);
            buf.put_u8(kind);
            buf.extend_from_slice(&payload);
            let _ = Decoder::new().decode(&mut buf);
        }
    }
}
