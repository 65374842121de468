//! TAP devices backing VF ports: one per interface, named after the port's netdev, kept open
//! by the dataplane. Whoever plays the VM takes the other side (typically by moving the device
//! into a network namespace; the file descriptor stays valid).
//!
//! With offload, the TAP is opened with virtio-net headers (`IFF_VNET_HDR`) and TCP
//! segmentation and checksum offload: every read and write carries a [`VnetHdr`] before the
//! frame, and reads may be TCP super-segments (`crate::packet::offload` handles both).

use std::io::{self, IoSlice};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::os::fd::{AsFd, BorrowedFd};

use tun_rs::{DeviceBuilder, Layer, SyncDevice};

use crate::packet::MacAddr;
use crate::packet::offload::{GSO_NONE, VNET_HDR_LEN, VnetHdr};

/// An open TAP.
pub struct Tap {
    device: SyncDevice,
    name: String,
    mac: MacAddr,
    offload: bool,
    /// Super-segments read and merged ones written.
    offload_reads: AtomicU64,
    offload_writes: AtomicU64,
    /// Wire segments a write failed for, not yet counted by the forwarder: its port's
    /// counter, which outlives the TAP (a sender thread may still hold a write for it).
    lost: Arc<AtomicU64>,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("name", &self.name)
            .field("mac", &self.mac)
            .field("offload", &self.offload)
            .finish_non_exhaustive()
    }
}

/// What one read returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapRead {
    /// The virtio-net header (all zero without offload).
    pub hdr: VnetHdr,
    /// Where the frame is in the buffer.
    pub frame: std::ops::Range<usize>,
}

impl Tap {
    /// Creates TAP `name` (up, with MTU `mtu`), with virtio-net headers and TCP offload if
    /// `offload`; failed writes add to `lost`. Non-blocking: the packet loop polls it.
    pub fn open(name: &str, mtu: u16, offload: bool, lost: Arc<AtomicU64>) -> io::Result<Self> {
        let device = DeviceBuilder::new()
            .name(name)
            .layer(Layer::L2)
            .mtu(mtu)
            .offload(offload)
            .build_sync()?;
        device.set_nonblocking(true)?;
        let mac = MacAddr(device.mac_address()?);
        Ok(Self {
            device,
            name: name.to_string(),
            mac,
            offload,
            offload_reads: AtomicU64::new(0),
            offload_writes: AtomicU64::new(0),
            lost,
        })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device's MAC when it was created: the VM's MAC until the VM shows another.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// Super-segments read from the VM and merged ones written to it, so far.
    pub fn offload_counts(&self) -> (u64, u64) {
        (
            self.offload_reads.load(Ordering::Relaxed),
            self.offload_writes.load(Ordering::Relaxed),
        )
    }

    /// Notes `n` wire segments whose write failed.
    pub fn add_lost(&self, n: u64) {
        self.lost.fetch_add(n, Ordering::Relaxed);
    }

    /// Whether reads and writes carry virtio-net headers.
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// The device's file descriptor, for the packet loop's `poll`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.device.as_fd()
    }

    /// Reads one frame (or super-segment) into `buf` if one is queued; `None` when none is.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<TapRead>> {
        match self.device.recv(buf) {
            Ok(n) => self.read_done(buf, n).map(Some),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_done(&self, buf: &[u8], n: usize) -> io::Result<TapRead> {
        if !self.offload {
            return Ok(TapRead {
                hdr: VnetHdr::default(),
                frame: 0..n,
            });
        }
        // The kernel always writes the whole header; a shorter read yields an empty frame,
        // which the forwarder counts as malformed.
        let hdr = VnetHdr::parse(buf.get(..n).unwrap_or_default()).unwrap_or_default();
        if hdr.gso_type != GSO_NONE {
            self.offload_reads.fetch_add(1, Ordering::Relaxed);
        }
        Ok(TapRead {
            hdr,
            frame: VNET_HDR_LEN.min(n)..n,
        })
    }

    /// Writes one frame, or a super-segment described by `hdr`, without waiting: a full queue
    /// is an error the caller counts. Without offload only plain frames can be written.
    pub fn try_send(&self, hdr: &VnetHdr, frame: &[u8]) -> io::Result<()> {
        if self.offload {
            let h = hdr.to_bytes();
            self.device
                .send_vectored(&[IoSlice::new(&h), IoSlice::new(frame)])?;
            if hdr.gso_type != GSO_NONE {
                self.offload_writes.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(());
        }
        if *hdr != VnetHdr::default() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a super-segment for a TAP without offload",
            ));
        }
        self.device.send(frame).map(|_| ())
    }
}
