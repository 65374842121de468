//! TCP and UDP traffic: a stream sender and server (throughput, echo) and UDP sinks, floods
//! and single datagrams.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use socket2::{Domain, Socket, Type};

use crate::emit;

const CHUNK: usize = 256 * 1024;

/// Socket buffers for floods and sinks: big enough that a burst is not dropped by our own
/// socket before the path under test is measured (the kernel caps it at rmem_max/wmem_max).
const UDP_BUFFER: usize = 4 << 20;
/// How long a sink waits in one receive before it checks the clock.
const SINK_POLL: Duration = Duration::from_millis(20);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n.max(1))
}

/// Serves `count` connections (concurrently), one JSON line for each as it ends.
pub fn tcp_serve(
    listen: SocketAddr,
    count: usize,
    echo: bool,
    announce: bool,
    timeout_ms: u64,
) -> anyhow::Result<()> {
    let l = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    if announce {
        emit(&json!({"listening": l.local_addr()?.to_string()}));
    }
    // std has no accept timeout: poll a non-blocking listener so that a test whose client
    // never comes does not leave the server waiting forever.
    l.set_nonblocking(true).context("non-blocking listener")?;
    let deadline = Instant::now() + ms(timeout_ms);
    let mut served = Vec::new();
    while served.len() < count {
        match l.accept() {
            Ok((s, peer)) => {
                s.set_nonblocking(false).context("blocking stream")?;
                served.push(std::thread::spawn(move || {
                    emit(&serve_one(s, peer, echo, timeout_ms));
                }));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    bail!(
                        "{} of {count} connections within {timeout_ms} ms",
                        served.len()
                    );
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e).context("accept"),
        }
    }
    for t in served {
        let _ = t.join();
    }
    Ok(())
}

fn serve_one(mut s: TcpStream, peer: SocketAddr, echo: bool, timeout_ms: u64) -> Value {
    let start = Instant::now();
    let mut bytes: u64 = 0;
    let mut buf = vec![0u8; CHUNK];
    let r = s
        .set_read_timeout(Some(ms(timeout_ms)))
        .and_then(|()| s.set_write_timeout(Some(ms(timeout_ms))))
        .and_then(|()| {
            loop {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    break Ok(());
                }
                bytes += n as u64;
                if echo {
                    s.write_all(&buf[..n])?;
                }
            }
        });
    let mut v = json!({
        "peer": peer.to_string(),
        "bytes": bytes,
        "seconds": start.elapsed().as_secs_f64(),
    });
    if let Err(e) = r {
        v["error"] = e.to_string().into();
    }
    v
}

/// Connects, writes `bytes`, half-closes and reads to EOF (what an echo server returns is
/// read by a second thread, so neither side blocks on a full window).
pub fn tcp_send(to: SocketAddr, bytes: u64, timeout_ms: u64) -> Value {
    let s = match TcpStream::connect_timeout(&to, ms(timeout_ms)) {
        Ok(s) => s,
        Err(e) => return json!({"connected": false, "error": e.to_string()}),
    };
    let start = Instant::now();
    let stall = Some(ms(timeout_ms));
    let reader = match s
        .set_read_timeout(stall)
        .and_then(|()| s.set_write_timeout(stall))
        .and_then(|()| s.try_clone())
    {
        Ok(r) => r,
        Err(e) => return json!({"connected": true, "bytes": 0, "error": e.to_string()}),
    };
    let echoed = std::thread::spawn(move || {
        let mut r = reader;
        let mut buf = vec![0u8; CHUNK];
        let mut n_total: u64 = 0;
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(n_total),
                Ok(n) => n_total += n as u64,
                Err(e) => return Err(e),
            }
        }
    });
    let mut w = s;
    let chunk = vec![0x5au8; CHUNK];
    let mut written: u64 = 0;
    let mut error = None;
    while written < bytes {
        let n = usize::try_from(bytes - written).map_or(CHUNK, |left| left.min(CHUNK));
        if let Err(e) = w.write_all(&chunk[..n]) {
            error = Some(e.to_string());
            break;
        }
        written += n as u64;
    }
    let _ = w.shutdown(Shutdown::Write);
    let echoed = match echoed.join() {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            error.get_or_insert(e.to_string());
            0
        }
        Err(_) => {
            error.get_or_insert("the reader thread panicked".into());
            0
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let mut v = json!({
        "connected": true,
        "bytes": written,
        "echoed": echoed,
        "seconds": seconds,
        "gbit_per_s": written as f64 * 8.0 / seconds.max(1e-9) / 1e9,
    });
    if let Some(e) = error {
        v["error"] = e.into();
    }
    v
}

/// A UDP socket with big buffers, bound to `addr`.
fn udp_socket(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, None).context("UDP socket")?;
    // The sizes are a wish; the kernel caps them.
    let _ = s.set_recv_buffer_size(UDP_BUFFER);
    let _ = s.set_send_buffer_size(UDP_BUFFER);
    s.bind(&addr.into())
        .with_context(|| format!("binding {addr}"))?;
    Ok(s.into())
}

/// The unspecified address of `to`'s family, port 0: where a sender binds.
fn any_for(to: SocketAddr) -> SocketAddr {
    match to {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}

/// Counts what arrives on `listen` for `seconds`.
pub fn udp_sink(listen: SocketAddr, seconds: f64, announce: bool) -> anyhow::Result<Value> {
    let s = udp_socket(listen)?;
    if announce {
        emit(&json!({"listening": s.local_addr()?.to_string()}));
    }
    let end = Instant::now() + Duration::from_secs_f64(seconds.max(0.0));
    let mut buf = vec![0u8; 65_536];
    let (mut packets, mut bytes) = (0u64, 0u64);
    // Set once, not per datagram: a setsockopt per packet would double the sink's system
    // calls, and on a flood the sink shares the CPUs with the path it measures.
    s.set_read_timeout(Some(SINK_POLL))?;
    while Instant::now() < end {
        match s.recv_from(&mut buf) {
            Ok((n, _)) => {
                packets += 1;
                bytes += n as u64;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e).context("receiving"),
        }
    }
    Ok(json!({"packets": packets, "bytes": bytes}))
}

/// Sends `size`-byte datagrams to `to` as fast as the socket takes them for `seconds`.
pub fn udp_flood(to: SocketAddr, seconds: f64, size: usize) -> anyhow::Result<Value> {
    let s = udp_socket(any_for(to))?;
    // Connected, the kernel keeps the route instead of looking it up for every datagram.
    s.connect(to)
        .with_context(|| format!("connecting to {to}"))?;
    let payload = vec![0xa5u8; size];
    let start = Instant::now();
    let run = Duration::from_secs_f64(seconds.max(0.0));
    let (mut packets, mut errors) = (0u64, 0u64);
    let mut first_error: Option<String> = None;
    'outer: loop {
        // Reading the clock per datagram would cost more than the send on a fast path.
        for _ in 0..64 {
            match s.send(&payload) {
                Ok(_) => packets += 1,
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        if start.elapsed() >= run {
            break 'outer;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(json!({
        "packets": packets,
        "bytes": packets * size as u64,
        "pps": packets as f64 / secs.max(1e-9),
        "seconds": secs,
        "errors": errors,
        "first_error": first_error,
    }))
}

/// Sends one datagram; a send the kernel refuses (no route, say) is a result, not a failure.
pub fn udp_send(to: SocketAddr, payload: &str) -> anyhow::Result<Value> {
    let s = udp_socket(any_for(to))?;
    Ok(match s.send_to(payload.as_bytes(), to) {
        Ok(n) => json!({"sent": true, "bytes": n, "from": s.local_addr()?.to_string()}),
        Err(e) => json!({"sent": false, "error": e.to_string()}),
    })
}

/// Waits for one datagram on `listen`.
pub fn udp_recv(listen: SocketAddr, timeout_ms: u64, announce: bool) -> anyhow::Result<Value> {
    let s = udp_socket(listen)?;
    if announce {
        emit(&json!({"listening": s.local_addr()?.to_string()}));
    }
    s.set_read_timeout(Some(ms(timeout_ms)))?;
    let mut buf = vec![0u8; 65_536];
    Ok(match s.recv_from(&mut buf) {
        Ok((n, from)) => json!({
            "received": true,
            "from": from.to_string(),
            "payload": String::from_utf8_lossy(&buf[..n]),
        }),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            json!({"received": false})
        }
        Err(e) => return Err(e).context("receiving"),
    })
}
