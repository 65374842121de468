//! Moving real packets: TAP devices for the VF ports, raw sockets for the underlay, and the
//! threads that feed them through the [`Forwarder`].
//!
//! ```text
//!  DataplaneService (gRPC calls)
//!     │ reconcile() after Create/DeleteInterface: opens the TAP of every port in use
//!     ▼
//!  Packets ── taps: port -> Tap (a generation count tells the loop the set changed)
//!     │
//!     ├─ thread dp-packets (packet_loop): polls every TAP and the underlay sockets (4, 41),
//!     │   ready sources through the Forwarder, then one dispatch:
//!     │     frames (merged per TAP by a Coalescer) ─► inline, or thread dp-tap-tx (send)
//!     │     underlay packets ──────────────────────► inline, or thread dp-underlay-tx
//!     └─ tokio task: expires flows every 5 s
//! ```
//!
//! The packet loop is an OS thread blocked in `poll`, not a runtime task: a packet then wakes
//! it directly, without a worker hand-off. Before it sleeps it polls for `poll_spin`
//! ([`spin`]); it sleeps at most [`packet_loop::WAKEUP`], to notice that the packet path was
//! dropped, and ends.
//!
//! The state lock is taken before the forwarder's, everywhere. Each packet holds both for
//! the time it takes to decide (no I/O under a lock); sends never wait: a full TAP queue or
//! socket buffer is a counted drop (`tx_failed`). A VF port's TAP lives from the first time an
//! interface uses the port until the dataplane stops, as a VF outlives the interfaces on it,
//! or until it fails (its device was deleted, say with the VM's namespace): the packet loop
//! then closes it and opens a fresh one, which waits for its VM as a new interface's does.

mod outbox;
mod packet_loop;
pub mod send;
pub mod spin;
pub mod tap;
pub mod underlay;

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

use ferrinet_proto::dataplane_status::v1 as status_pb;
use tokio::task::JoinHandle;

use crate::config::{DataplaneConfig, PacketConfig};
use crate::flow::Direction;
use crate::forward::{Action, Attachment, DropReason, Forwarder, Settings, Traffic};
use crate::packet::MacAddr;
use crate::packet::offload::{self, VnetHdr};
use crate::state::State;
use outbox::Outbox;
use send::{Handoff, SendFn};
use spin::Wait;
use tap::Tap;
use underlay::{Receiver, UnderlayError};

/// How often timed-out flows are removed (dpservice: every 5 s).
const FLOW_SCAN: Duration = Duration::from_secs(5);
/// Largest frame or packet read at once (a super-segment and its virtio-net header).
const BUFFER: usize = 65_536 + offload::VNET_HDR_LEN + 256;
/// Frames or packets taken from one source per round of the packet loop.
const BATCH: usize = 64;

/// Starting the packet path failed.
#[derive(Debug, thiserror::Error)]
pub enum PacketsError {
    /// The underlay could not be set up.
    #[error(transparent)]
    Underlay(#[from] UnderlayError),
    /// The packet settings are invalid.
    #[error("invalid packet settings: {0}")]
    Settings(String),
}

/// The packet path of one dataplane; cheap to clone.
#[derive(Debug, Clone)]
pub struct Packets {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Arc<Mutex<State>>,
    forwarder: Mutex<Forwarder>,
    /// Port name -> its slot.
    ports: HashMap<String, PortSlot>,
    taps: RwLock<HashMap<String, Arc<Tap>>>,
    /// Bumped whenever `taps` changes.
    tap_generation: AtomicU64,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Underlay packets (outer destination, packet) to the raw socket.
    tx: Handoff<(Ipv6Addr, Vec<u8>)>,
    /// Frames to the TAPs.
    tap_tx: Handoff<TapFrame>,
    tap_mtu: u16,
    tap_offload: bool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
}

/// A VF port as the packet path knows it, from start to stop.
#[derive(Debug)]
struct PortSlot {
    /// Position among the VF ports.
    position: usize,
    /// Name of its TAP.
    netdev: String,
    /// Wire segments whose TAP write failed, not yet counted by the forwarder. Every TAP the
    /// port opens adds here, so writes that fail after their TAP was closed still count.
    lost: Arc<AtomicU64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here panics while holding a lock; should it, the data is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The gateway MAC of the VF port at `position`: locally administered, unicast.
fn port_mac(position: usize) -> MacAddr {
    let p = (position as u32).to_be_bytes();
    MacAddr([0x02, 0xfe, p[0], p[1], p[2], p[3]])
}

impl Packets {
    /// Starts the packet path over `state` (the dataplane's shared state): makes the underlay
    /// /64 local, opens the underlay sockets and starts their threads. Must run inside the tokio
    /// runtime. TAPs are opened later, by [`Packets::reconcile`].
    pub fn start(
        state: Arc<Mutex<State>>,
        config: &DataplaneConfig,
        packets: &PacketConfig,
    ) -> Result<Self, PacketsError> {
        let underlay_mtu = match (packets.underlay_mtu, &packets.underlay_interface) {
            (Some(m), _) => m,
            (None, Some(name)) => underlay::interface_mtu(name)?,
            (None, None) => 1500,
        };
        let settings = Settings {
            underlay_mtu,
            ..packets.settings.clone()
        };
        let prefix = lock(&state).host_prefix();
        if packets.make_prefix_local {
            underlay::make_prefix_local(prefix)?;
        }
        let receivers = underlay::INNER_PROTOCOLS
            .iter()
            .map(|p| Receiver::new(*p))
            .collect::<Result<Vec<_>, _>>()?;
        let sender_spin = packets.poll_spin.min(crate::config::DEFAULT_POLL_SPIN);
        let inner = Arc::new(Inner {
            state,
            forwarder: Mutex::new(Forwarder::new(settings.clone())),
            ports: config
                .vf_ports
                .iter()
                .enumerate()
                .map(|(position, v)| {
                    let slot = PortSlot {
                        position,
                        netdev: v.netdev.clone(),
                        lost: Arc::default(),
                    };
                    (v.name.clone(), slot)
                })
                .collect(),
            taps: RwLock::new(HashMap::new()),
            tap_generation: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
            tx: underlay_handoff(sender_spin)?,
            tap_tx: tap_handoff(sender_spin)?,
            tap_mtu: packets.tap_mtu,
            tap_offload: packets.tap_offload,
        });
        let mut tasks = Vec::new();
        let weak = Arc::downgrade(&inner);
        let spin = if packets.busy_poll {
            Wait::Busy(packet_loop::WAKEUP)
        } else {
            Wait::Spin(packets.poll_spin)
        };
        std::thread::Builder::new()
            .name("dp-packets".into())
            .spawn(move || packet_loop::run(weak, receivers, spin))
            .map_err(|e| {
                PacketsError::Underlay(UnderlayError::Socket {
                    what: "start the packet loop",
                    source: e,
                })
            })?;
        tasks.push(tokio::spawn(ticker(Arc::downgrade(&inner))));
        lock(&inner.tasks).extend(tasks);
        tracing::info!(
            %prefix,
            underlay_mtu,
            poll_spin_us = packets.poll_spin.as_micros(),
            busy_poll = packets.busy_poll,
            firewall = %settings.firewall,
            "packet path started"
        );
        Ok(Self { inner })
    }

    /// Opens the TAP of every VF port an interface uses and that has none yet. A TAP that
    /// cannot be opened is logged and retried at the next call.
    pub fn reconcile(&self) {
        self.inner.reconcile();
    }

    /// The TAP name of `device`, if open.
    pub fn tap_name(&self, device: &str) -> Option<String> {
        self.inner
            .taps
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(device)
            .map(|t| t.name().to_string())
    }

    /// Every counter, for the status service.
    pub fn counters(&self) -> status_pb::PacketCountersResponse {
        let st = lock(&self.inner.state);
        let mut fw = lock(&self.inner.forwarder);
        fw.sync(&st);
        fw.count_underlay_tx_failures(self.inner.tx.take_lost());
        for (device, slot) in &self.inner.ports {
            let lost = slot.lost.swap(0, Ordering::Relaxed);
            if lost > 0 {
                fw.count_port_drops(device, DropReason::TxFailed, lost);
            }
        }
        let mut interfaces: Vec<status_pb::InterfacePackets> = fw
            .ports()
            .map(|info| {
                let traffic = fw
                    .counters()
                    .interfaces
                    .get(&info.index)
                    .copied()
                    .unwrap_or_default();
                let firewall = [Direction::Ingress, Direction::Egress]
                    .into_iter()
                    .map(|d| {
                        let c = fw.enforcement().counters(info.index, d);
                        status_pb::FirewallCounters {
                            direction: match d {
                                Direction::Ingress => "ingress",
                                Direction::Egress => "egress",
                            }
                            .to_string(),
                            accepted: c.accepted,
                            dropped: c.dropped,
                            would_drop: c.would_drop,
                        }
                    })
                    .collect();
                let tap = self.inner.tap(&info.device);
                let (offload_reads, offload_writes) =
                    tap.as_ref().map(|t| t.offload_counts()).unwrap_or_default();
                status_pb::InterfacePackets {
                    interface_id: info.id.to_string(),
                    vni: info.vni,
                    device: info.device.clone(),
                    tap: tap.map(|t| t.name().to_string()).unwrap_or_default(),
                    traffic: Some(traffic_msg(&traffic)),
                    firewall,
                    offload_reads,
                    offload_writes,
                }
            })
            .collect();
        interfaces.sort_by(|a, b| a.interface_id.cmp(&b.interface_id));
        let mut vnis: Vec<status_pb::VniPackets> = fw
            .counters()
            .vnis
            .iter()
            .map(|(vni, t)| status_pb::VniPackets {
                vni: *vni,
                traffic: Some(traffic_msg(t)),
            })
            .collect();
        vnis.sort_by_key(|v| v.vni);
        status_pb::PacketCountersResponse {
            enabled: true,
            firewall_mode: fw.settings().firewall.to_string(),
            interfaces,
            vnis,
            underlay: Some(traffic_msg(&fw.counters().underlay)),
            flows: fw.flow_count() as u64,
        }
    }
}

fn traffic_msg(t: &Traffic) -> status_pb::TrafficCounters {
    status_pb::TrafficCounters {
        rx_packets: t.rx_packets,
        rx_bytes: t.rx_bytes,
        tx_packets: t.tx_packets,
        tx_bytes: t.tx_bytes,
        drops: t
            .nonzero_drops()
            .map(|(r, n)| status_pb::DropCount {
                reason: r.name().to_string(),
                packets: n,
            })
            .collect(),
    }
}

/// A frame (or super-segment) on its way to a TAP.
pub(crate) struct TapFrame {
    tap: Arc<Tap>,
    hdr: VnetHdr,
    frame: Vec<u8>,
}

impl std::fmt::Debug for TapFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapFrame")
            .field("tap", &self.tap.name())
            .field("len", &self.frame.len())
            .finish_non_exhaustive()
    }
}

/// Bursts of up to this many packets go inline when nothing is queued.
const INLINE: usize = 2;
/// Frames up to this long, too: a merged super-segment, whose write runs the VM's receive of
/// all its segments, goes to the sender thread.
const INLINE_FRAME: usize = 2048;

fn underlay_handoff(spin: Duration) -> Result<Handoff<(Ipv6Addr, Vec<u8>)>, UnderlayError> {
    let sender = underlay::Sender::new()?;
    let send: Arc<SendFn<(Ipv6Addr, Vec<u8>)>> =
        Arc::new(move |(dst, packet)| u64::from(sender.send(dst, &packet).is_err()));
    Handoff::start("dp-underlay-tx", send, |b| b.len() <= INLINE, spin).map_err(|source| {
        UnderlayError::Socket {
            what: "start the underlay sender thread",
            source,
        }
    })
}

fn tap_handoff(spin: Duration) -> Result<Handoff<TapFrame>, UnderlayError> {
    // Failures are kept by the TAP until the counters are read: the forwarder is not this
    // thread's to lock.
    let send: Arc<SendFn<TapFrame>> = Arc::new(|f: TapFrame| {
        if f.tap.try_send(&f.hdr, &f.frame).is_err() {
            f.tap.add_lost(segments_in(&f.hdr, f.frame.len()));
        }
        0
    });
    let small =
        |b: &[TapFrame]| b.len() <= INLINE && b.iter().all(|f| f.frame.len() <= INLINE_FRAME);
    Handoff::start("dp-tap-tx", send, small, spin).map_err(|source| UnderlayError::Socket {
        what: "start the TAP sender thread",
        source,
    })
}

impl Inner {
    /// Opens the TAP of every VF port an interface uses and that has none yet (see
    /// [`Packets::reconcile`]).
    fn reconcile(&self) {
        let inner = self;
        // The forwarder's caches are rebuilt here once for the change that called us, instead
        // of by the next packet; their ports are the ones in use.
        let in_use: Vec<String> = {
            let st = lock(&inner.state);
            let mut fw = lock(&inner.forwarder);
            fw.sync(&st);
            fw.ports().map(|p| p.device.clone()).collect()
        };
        for device in in_use {
            let open = inner
                .taps
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&device);
            if open {
                continue;
            }
            let Some(slot) = inner.ports.get(&device) else {
                continue;
            };
            let (position, netdev) = (slot.position, &slot.netdev);
            match Tap::open(netdev, inner.tap_mtu, inner.tap_offload, slot.lost.clone()) {
                Ok(tap) => {
                    let tap = Arc::new(tap);
                    let att = Attachment {
                        port_mac: port_mac(position),
                        vm_mac: tap.mac(),
                    };
                    lock(&inner.forwarder).attach(&device, att);
                    inner
                        .taps
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(device.clone(), tap);
                    inner.tap_generation.fetch_add(1, Ordering::AcqRel);
                    tracing::info!(
                        device,
                        tap = netdev,
                        port_mac = %att.port_mac,
                        vm_mac = %att.vm_mac,
                        "TAP opened"
                    );
                }
                Err(e) => {
                    tracing::error!(device, tap = netdev, error = %e, "cannot open the TAP");
                }
            }
        }
    }

    /// Closes `tap` of `device` after it failed (its device was deleted, say with the VM's
    /// namespace); whether it was still open. The next reconcile opens it anew.
    fn close_tap(&self, device: &str, tap: &Arc<Tap>, error: &std::io::Error) -> bool {
        {
            let mut taps = self.taps.write().unwrap_or_else(|e| e.into_inner());
            if !taps.get(device).is_some_and(|t| Arc::ptr_eq(t, tap)) {
                return false;
            }
            taps.remove(device);
        }
        self.tap_generation.fetch_add(1, Ordering::AcqRel);
        // Its failed writes, and those still queued for it, stay in the port's counter.
        tracing::warn!(device, tap = tap.name(), %error, "TAP failed; closed to open it anew");
        true
    }

    fn tap(&self, device: &str) -> Option<Arc<Tap>> {
        self.taps
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(device)
            .cloned()
    }

    /// Sends what the engine decided: underlay packets as one burst (see [`send`]), frames
    /// merged per TAP and written at the end, so that a burst of one flow's segments becomes
    /// one write.
    ///
    /// With `hold` (the time now), a TAP's frames stay in their merge while one of its flows
    /// is still growing (see [`outbox`]). The loop dispatches without `hold` before it
    /// sleeps.
    fn dispatch(&self, out: &mut Outbox, hold: Option<Instant>) {
        for a in out.actions.drain(..) {
            match a {
                Action::ToUnderlay { dst, packet } => out.underlay.push((dst, packet)),
                Action::ToPort { device, frame } => match self.tap(&device) {
                    Some(tap) if tap.offload() => {
                        out.merge
                            .entry(device)
                            .or_default()
                            .push(frame, Instant::now);
                    }
                    Some(tap) => out.taps.push(TapFrame {
                        tap,
                        hdr: VnetHdr::default(),
                        frame,
                    }),
                    None => {
                        lock(&self.forwarder).count_port_drops(&device, DropReason::TxFailed, 1)
                    }
                },
            }
        }
        for (device, m) in &mut out.merge {
            if !m.goes(hold) {
                continue;
            }
            match self.tap(device) {
                Some(tap) => out.taps.extend(m.take().map(|(hdr, frame)| TapFrame {
                    tap: tap.clone(),
                    hdr,
                    frame,
                })),
                None => {
                    let lost = m
                        .take()
                        .map(|(hdr, frame)| segments_in(&hdr, frame.len()))
                        .sum();
                    lock(&self.forwarder).count_port_drops(device, DropReason::TxFailed, lost);
                }
            }
        }
        self.tap_tx.send(&mut out.taps);
        let lost = self.tx.send(&mut out.underlay);
        if lost > 0 {
            lock(&self.forwarder).count_underlay_tx_failures(lost);
        }
    }
}

/// How many wire segments a frame written with `hdr` stands for.
fn segments_in(hdr: &VnetHdr, len: usize) -> u64 {
    match hdr.gso_size {
        0 => 1,
        mss => len
            .saturating_sub(usize::from(hdr.hdr_len))
            .div_ceil(usize::from(mss))
            .max(1) as u64,
    }
}

async fn ticker(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(FLOW_SCAN);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let expired = lock(&inner.forwarder).expire(Instant::now());
        if expired > 0 {
            tracing::debug!(expired, "flows expired");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::packet::offload::GSO_TCPV4;

    /// Needs root (a TAP device), as the packet tests do.
    #[test]
    fn writes_that_fail_after_their_tap_closed_still_count() {
        let lost = Arc::new(AtomicU64::new(0));
        let tap = Arc::new(Tap::open("fnt-lost0", 1500, false, lost.clone()).unwrap());
        let handoff = tap_handoff(Duration::ZERO).unwrap();
        // A TAP without offload refuses super-segments: every one of these writes fails.
        let hdr = VnetHdr {
            gso_type: GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1000,
            ..VnetHdr::default()
        };
        let mut burst: Vec<TapFrame> = (0..4)
            .map(|_| TapFrame {
                tap: tap.clone(),
                hdr,
                frame: vec![0; 3054],
            })
            .collect();
        assert_eq!(handoff.send(&mut burst), 0, "queued for the sender thread");
        // What `close_tap` does: the packet path lets go of the TAP; queued frames still hold it.
        drop(tap);
        let want = 4 * segments_in(&hdr, 3054);
        assert_eq!(want, 12);
        for _ in 0..1000 {
            if lost.load(Ordering::Relaxed) == want {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(lost.load(Ordering::Relaxed), want);
    }
}
