//! Moving real packets: TAP devices for the VF ports, raw sockets for the underlay, and the
//! threads that feed them through the [`Forwarder`].
//!
//! ```text
//!  DataplaneService (gRPC calls)
//!     │ reconcile() after Create/DeleteInterface: opens the TAP of every port in use
//!     ▼
//!  Packets ── taps: port -> Tap ───────────────────────────────┐
//!     │                                                         │ Outbox: frames merged per
//!     ├─ thread per TAP: read a frame or a super-segment,       │ TAP (Coalescer), then one
//!     │  cut it into wire segments ──────┐                      │ non-blocking write each
//!     ├─ thread: underlay proto 4 ───────┼─► lock State, lock Forwarder ─► Actions
//!     ├─ thread: underlay proto 41 ──────┘  (underlay threads: up to BATCH queued packets,
//!     │                                      then one dispatch)  └► UnderlayTx: a burst to
//!     │                                                             the sender thread (send)
//!     └─ tokio task: expires flows every 5 s
//! ```
//!
//! The packet loops are OS threads blocked in their reads, not runtime tasks: a packet then
//! wakes its reader directly, without the poller, a worker hand-off and the extra read that
//! finds the queue empty (on the 2-core benchmark this took TCP from 1.6 to 2 Gbit/s). Before
//! blocking, each polls its queue for `poll_spin` ([`spin`]). They wake every
//! [`underlay::RECV_WAKEUP`] to notice that the packet path was dropped, and end.
//!
//! The state lock is taken before the forwarder's, everywhere. Each packet holds both for
//! the time it takes to decide (no I/O under a lock); sends never wait: a full TAP queue or
//! socket buffer is a counted drop (`tx_failed`). A VF port's TAP lives from the first time an
//! interface uses the port until the dataplane stops, as a VF outlives the interfaces on it.

pub mod send;
pub mod spin;
pub mod tap;
pub mod underlay;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

use ferrinet_proto::dataplane_status::v1 as status_pb;
use tokio::task::JoinHandle;

use crate::config::{DataplaneConfig, PacketConfig};
use crate::flow::Direction;
use crate::forward::{Action, Attachment, DropReason, Forwarder, Settings, Traffic};
use crate::packet::MacAddr;
use crate::packet::offload::{self, Coalescer, Segments, VnetHdr};
use crate::state::State;
use send::{Burst, UnderlayTx};
use spin::spin_read;
use tap::Tap;
use underlay::{Receiver, UnderlayError};

/// How often timed-out flows are removed (dpservice: every 5 s).
const FLOW_SCAN: Duration = Duration::from_secs(5);
/// Largest frame or packet read at once (a super-segment and its virtio-net header).
const BUFFER: usize = 65_536 + offload::VNET_HDR_LEN + 256;
/// Underlay packets taken per wakeup before the frames they became are written.
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
    /// Port name -> (position among the VF ports, TAP name).
    ports: HashMap<String, (usize, String)>,
    taps: RwLock<HashMap<String, Arc<Tap>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    tx: UnderlayTx,
    tap_mtu: u16,
    tap_offload: bool,
    /// How long a packet loop polls its empty queue before it sleeps.
    spin: Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
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
        let inner = Arc::new(Inner {
            state,
            forwarder: Mutex::new(Forwarder::new(settings.clone())),
            ports: config
                .vf_ports
                .iter()
                .enumerate()
                .map(|(i, v)| (v.name.clone(), (i, v.netdev.clone())))
                .collect(),
            taps: RwLock::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            tx: UnderlayTx::start(packets.poll_spin)?,
            tap_mtu: packets.tap_mtu,
            tap_offload: packets.tap_offload,
            spin: packets.poll_spin,
        });
        let mut tasks = Vec::new();
        for r in receivers {
            let weak = Arc::downgrade(&inner);
            let name = format!("dp-underlay-{}", r.protocol());
            let spin = packets.poll_spin;
            std::thread::Builder::new()
                .name(name)
                .spawn(move || underlay_thread(weak, r, spin))
                .map_err(|e| {
                    PacketsError::Underlay(UnderlayError::Socket {
                        what: "start the receiver thread",
                        source: e,
                    })
                })?;
        }
        tasks.push(tokio::spawn(ticker(Arc::downgrade(&inner))));
        lock(&inner.tasks).extend(tasks);
        tracing::info!(
            %prefix,
            underlay_mtu,
            poll_spin_us = packets.poll_spin.as_micros(),
            firewall = %settings.firewall,
            "packet path started"
        );
        Ok(Self { inner })
    }

    /// Opens the TAP of every VF port an interface uses and that has none yet. A TAP that
    /// cannot be opened is logged and retried at the next call.
    pub fn reconcile(&self) {
        let inner = &self.inner;
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
            let Some((position, netdev)) = inner.ports.get(&device).cloned() else {
                continue;
            };
            match Tap::open(&netdev, inner.tap_mtu, inner.tap_offload) {
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
                        .insert(device.clone(), tap.clone());
                    let (weak, dev, spin) = (Arc::downgrade(inner), device.clone(), inner.spin);
                    let started = std::thread::Builder::new()
                        .name(format!("dp-{netdev}"))
                        .spawn(move || port_thread(weak, dev, tap, spin));
                    if let Err(e) = started {
                        // Closed again, so that the next reconcile retries from the start.
                        inner
                            .taps
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&device);
                        tracing::error!(device, tap = netdev, error = %e, "cannot start the TAP's thread");
                        continue;
                    }
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

/// Frames on their way to the TAPs, merged per TAP where it takes offload; kept by each
/// packet task so that the buffers are reused.
#[derive(Debug, Default)]
struct Outbox {
    actions: Vec<Action>,
    merge: HashMap<Arc<str>, Coalescer>,
    underlay: Burst,
}

impl Inner {
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
    fn dispatch(&self, out: &mut Outbox) {
        for a in out.actions.drain(..) {
            match a {
                Action::ToUnderlay { dst, packet } => out.underlay.push((dst, packet)),
                Action::ToPort { device, frame } => match self.tap(&device) {
                    Some(tap) if tap.offload() => {
                        out.merge.entry(device).or_default().push(frame);
                    }
                    Some(tap) if tap.try_send(&VnetHdr::default(), &frame).is_ok() => {}
                    _ => lock(&self.forwarder).count_port_drops(&device, DropReason::TxFailed, 1),
                },
            }
        }
        for (device, merged) in &mut out.merge {
            if merged.is_empty() {
                continue;
            }
            let tap = self.tap(device);
            let mut failed = 0;
            for (hdr, frame) in merged.drain() {
                if tap
                    .as_ref()
                    .is_none_or(|t| t.try_send(&hdr, &frame).is_err())
                {
                    failed += segments_in(&hdr, frame.len());
                }
            }
            if failed > 0 {
                lock(&self.forwarder).count_port_drops(device, DropReason::TxFailed, failed);
            }
        }
        // With what the sender thread lost since: counted here rather than by that thread,
        // which then needs no handle on the forwarder.
        let lost = self.tx.send(&mut out.underlay) + self.tx.take_lost();
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

/// The thread reading one TAP; ends when the packet path is dropped.
fn port_thread(inner: Weak<Inner>, device: String, tap: Arc<Tap>, spin: Duration) {
    let mut buf = vec![0u8; BUFFER];
    let mut segments = Segments::new();
    let mut out = Outbox::default();
    loop {
        let mut next = spin_read(spin, |wait| {
            let wait = if wait {
                underlay::RECV_WAKEUP
            } else {
                Duration::ZERO
            };
            tap.recv(&mut buf, wait)
        })
        .unwrap_or_else(|e| tap_failed(&tap, &device, &e));
        let Some(inner) = inner.upgrade() else {
            return;
        };
        // As the underlay threads: what is already queued, up to a batch, then one dispatch
        // (a burst for the sender thread, merged frames for local TAPs).
        let mut taken = 0;
        while let Some(read) = next {
            taken += 1;
            let frame = buf.get(read.frame).unwrap_or_default();
            {
                let st = lock(&inner.state);
                let mut fw = lock(&inner.forwarder);
                match offload::segment(&read.hdr, frame, &mut segments) {
                    Ok(()) => {
                        let now = Instant::now();
                        for f in segments.iter() {
                            fw.vm_frame(&st, &device, f, now, &mut out.actions);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(device, error = %e, "offloaded frame from the VM dropped");
                        fw.count_port_drops(&device, DropReason::Malformed, 1);
                    }
                }
            }
            next = if taken < BATCH {
                tap.recv(&mut buf, Duration::ZERO)
                    .unwrap_or_else(|e| tap_failed(&tap, &device, &e))
            } else {
                None
            };
        }
        if taken > 0 {
            inner.dispatch(&mut out);
        }
    }
}

fn tap_failed(tap: &Tap, device: &str, e: &std::io::Error) -> Option<tap::TapRead> {
    tracing::warn!(device, tap = tap.name(), error = %e, "TAP read failed");
    std::thread::sleep(Duration::from_millis(100));
    None
}

/// The thread of one underlay receiver; ends when the packet path is dropped.
fn underlay_thread(inner: Weak<Inner>, receiver: Receiver, spin: Duration) {
    let mut buf = vec![0u8; BUFFER];
    let mut out = Outbox::default();
    loop {
        let got = spin_read(spin, |wait| {
            if wait {
                receiver.recv(&mut buf)
            } else {
                receiver.try_recv(&mut buf)
            }
        });
        let mut next = match got {
            Ok(got) => got,
            Err(e) => {
                tracing::warn!(protocol = receiver.protocol(), error = %e, "underlay read failed");
                std::thread::sleep(Duration::from_millis(100));
                None
            }
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        // Take what is already queued, up to a batch, before writing to the TAPs: the
        // segments of one flow in it are merged into one write.
        let mut taken = 0;
        while let Some((dst, n)) = next {
            taken += 1;
            {
                let st = lock(&inner.state);
                // Another dataplane's traffic on a shared link (dev mode shares loopback).
                if Forwarder::is_own_underlay(&st, dst) {
                    let mut fw = lock(&inner.forwarder);
                    let packet = buf.get(..n).unwrap_or_default();
                    fw.underlay_packet(&st, dst, packet, Instant::now(), &mut out.actions);
                }
            }
            next = if taken < BATCH {
                receiver.try_recv(&mut buf).unwrap_or_else(|e| {
                    tracing::warn!(protocol = receiver.protocol(), error = %e, "underlay read failed");
                    None
                })
            } else {
                None
            };
        }
        if taken > 0 {
            inner.dispatch(&mut out);
        }
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
