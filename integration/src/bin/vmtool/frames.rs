//! Raw Ethernet frames out of the VM's link, for tests that feed the dataplane what no kernel
//! would send (truncated headers, bad lengths). An `AF_PACKET` socket needs the link's address
//! to send to; with no safe constructor for one, it is taken from a frame seen on the link, which
//! a datagram to the gateway makes the kernel send (an ARP request or the datagram itself).

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::socket::{LinkAddr, MsgFlags, recvfrom, sendto};
use serde_json::json;
use socket2::{Domain, Protocol, Socket, Type};

const ETH_P_ALL: u16 = 0x0003;
const LOOPBACK_INDEX: usize = 1;

/// Sends every frame (hex) out of the namespace's only non-loopback link.
pub fn send(frames: &[String]) -> anyhow::Result<serde_json::Value> {
    let bytes = frames
        .iter()
        .map(|h| hex(h).with_context(|| format!("--hex {h:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let socket = Socket::new(
        Domain::PACKET,
        Type::RAW,
        Some(Protocol::from(i32::from(ETH_P_ALL.to_be()))),
    )
    .context("AF_PACKET socket")?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let trigger = UdpSocket::bind("0.0.0.0:0").context("trigger socket")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let link = loop {
        if Instant::now() > deadline {
            bail!("no frame seen on the link to learn its address");
        }
        let _ = trigger.send_to(b"x", "169.254.0.1:9");
        let mut buf = [0u8; 2048];
        if let Ok((_, Some(addr))) = recvfrom::<LinkAddr>(socket.as_raw_fd(), &mut buf)
            && addr.ifindex() != LOOPBACK_INDEX
        {
            break addr;
        }
    };
    let mut sent = 0;
    for b in &bytes {
        if sendto(socket.as_raw_fd(), b, &link, MsgFlags::empty()).is_ok() {
            sent += 1;
        }
    }
    Ok(json!({ "sent": sent, "ifindex": link.ifindex() }))
}

fn hex(s: &str) -> anyhow::Result<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        bail!("odd number of hex digits");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .context("not hex")
        })
        .collect()
}
