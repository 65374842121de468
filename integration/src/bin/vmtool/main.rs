//! `ferrinet-vmtool`: the traffic a test "VM" (a network namespace) makes and measures. Each
//! command prints its result as one line of JSON on stdout (listeners may print a
//! `{"listening":ADDR}` line first with `--announce`, `tcp-serve` one line per connection).
//!
//! Loss, refused connections and silence are results, not failures: the exit status is
//! non-zero only for bad usage or a socket that cannot be made.

mod flow;
mod frames;
mod ping;

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "ferrinet-vmtool", about = "Traffic for test VMs; prints JSON")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// ICMP echo over a raw socket, with DF set; reports replies, RTTs and ICMP errors.
    Ping {
        /// Destination (IPv4 or IPv6).
        #[arg(long)]
        to: IpAddr,
        /// Echo requests to send.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
        count: u16,
        /// Time between requests.
        #[arg(long, default_value_t = 200)]
        interval_ms: u64,
        /// How long to wait for outstanding replies after the last request.
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
        /// ICMP payload bytes.
        #[arg(long, default_value_t = 56)]
        size: usize,
    },
    /// Accepts connections, reads each to EOF (echoing it back with --echo).
    TcpServe {
        /// Address to listen on (port 0: any; --announce tells which).
        #[arg(long)]
        listen: SocketAddr,
        /// Connections to serve before exiting.
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Write back what is read.
        #[arg(long)]
        echo: bool,
        /// Print `{"listening":ADDR}` once listening.
        #[arg(long)]
        announce: bool,
        /// Longest wait for the connections, and for data on one.
        #[arg(long, default_value_t = 60_000)]
        timeout_ms: u64,
    },
    /// Connects, sends N bytes, half-closes and reads to EOF.
    TcpSend {
        /// Server address.
        #[arg(long)]
        to: SocketAddr,
        /// Bytes to send.
        #[arg(long)]
        bytes: u64,
        /// Connect timeout, and the longest stall of a read or write.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
    },
    /// Counts the UDP datagrams received during a time.
    UdpSink {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// How long to listen.
        #[arg(long)]
        seconds: f64,
        /// Print `{"listening":ADDR}` once bound.
        #[arg(long)]
        announce: bool,
    },
    /// Sends UDP datagrams as fast as it can for a time.
    UdpFlood {
        /// Destination.
        #[arg(long)]
        to: SocketAddr,
        /// How long to send.
        #[arg(long)]
        seconds: f64,
        /// UDP payload bytes.
        #[arg(long, default_value_t = 64)]
        size: usize,
    },
    /// Sends one UDP datagram.
    UdpSend {
        /// Destination.
        #[arg(long)]
        to: SocketAddr,
        /// The datagram's payload.
        #[arg(long)]
        payload: String,
    },
    /// Sends raw Ethernet frames (hex) out of the namespace's link; the VM needs a route to
    /// 169.254.0.1 (it prompts a frame whose link address the raw socket reuses).
    Frames {
        /// A frame, as hex digits (repeatable).
        #[arg(long)]
        hex: Vec<String>,
    },
    /// Waits for one UDP datagram.
    UdpRecv {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// How long to wait.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
        /// Print `{"listening":ADDR}` once bound.
        #[arg(long)]
        announce: bool,
    },
}

/// Prints one JSON line and flushes it at once, so that a test reading the pipe sees it.
pub(crate) fn emit(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (the test stopped reading) leaves nothing to report to.
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Ping {
            to,
            count,
            interval_ms,
            timeout_ms,
            size,
        } => {
            let opts = ping::Opts {
                to,
                count,
                interval: std::time::Duration::from_millis(interval_ms),
                timeout: std::time::Duration::from_millis(timeout_ms),
                size,
            };
            emit(&ping::run(&opts)?);
        }
        Cmd::TcpServe {
            listen,
            count,
            echo,
            announce,
            timeout_ms,
        } => flow::tcp_serve(listen, count, echo, announce, timeout_ms)?,
        Cmd::TcpSend {
            to,
            bytes,
            timeout_ms,
        } => emit(&flow::tcp_send(to, bytes, timeout_ms)),
        Cmd::UdpSink {
            listen,
            seconds,
            announce,
        } => emit(&flow::udp_sink(listen, seconds, announce)?),
        Cmd::UdpFlood { to, seconds, size } => emit(&flow::udp_flood(to, seconds, size)?),
        Cmd::UdpSend { to, payload } => emit(&flow::udp_send(to, &payload)?),
        Cmd::Frames { hex } => emit(&frames::send(&hex)?),
        Cmd::UdpRecv {
            listen,
            timeout_ms,
            announce,
        } => emit(&flow::udp_recv(listen, timeout_ms, announce)?),
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrinet-vmtool: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
