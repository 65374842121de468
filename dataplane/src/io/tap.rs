//! TAP devices backing VF ports: one per interface, named after the port's netdev, kept open
//! by the dataplane. Whoever plays the VM takes the other side (typically by moving the device
//! into a network namespace; the file descriptor stays valid).

use std::io;

use tun_rs::{AsyncDevice, DeviceBuilder, Layer};

use crate::packet::MacAddr;

/// An open TAP.
pub struct Tap {
    device: AsyncDevice,
    name: String,
    mac: MacAddr,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("name", &self.name)
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

impl Tap {
    /// Creates TAP `name` (up, with MTU `mtu`). Must run inside the tokio runtime.
    pub fn open(name: &str, mtu: u16) -> io::Result<Self> {
        let device = DeviceBuilder::new()
            .name(name)
            .layer(Layer::L2)
            .mtu(mtu)
            .build_async()?;
        let mac = MacAddr(device.mac_address()?);
        Ok(Self {
            device,
            name: name.to_string(),
            mac,
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

    /// Reads one frame.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.device.recv(buf).await
    }

    /// Writes one frame without waiting: a full queue is an error the caller counts.
    pub fn try_send(&self, frame: &[u8]) -> io::Result<()> {
        self.device.try_send(frame).map(|_| ())
    }
}
