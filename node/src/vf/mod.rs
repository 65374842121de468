//! The VF pool: the virtual functions this node can hand to its network interfaces.
//!
//! An interface on a hypervisor is a port of dpservice: an SR-IOV virtual function of the
//! NVIDIA/Mellanox SmartNIC passed through to a VM (or a TAP device when dpservice runs in TAP
//! mode, and for ferrinet's software dataplane). The node needs to know which functions exist,
//! which are free, and dpservice's name of each (the `device_name` of CreateInterface):
//!
//! - [`discover`] finds them ([`VfConfig`]): in [`VfMode::Sysfs`] the VFs of every SR-IOV
//!   enabled Mellanox network PF under `<root>/bus/pci/devices` ([`sysfs`]), named after their
//!   PF's representor (`0000:3b:00.0_representor_vf0`, or `..._c0pf0vf0` in multiport-eswitch
//!   mode); if there are none, a synthesized list of 126 addresses from the configured PF base
//!   ([`synthesized_vfs`]); in [`VfMode::Tap`] the taps `dtapvf_N` with ports `net_tap{N+2}`.
//! - [`VfPool`] hands them out: [`VfPool::claim`] gives an owner (an interface name) its VF,
//!   [`VfPool::release`] frees it.
//!
//! Claims are keyed by owner, not by VF: an interface must keep its VF across node restarts
//! (the VM is plugged into that function, and dpservice knows the interface by that device),
//! so claiming again for the same owner returns the same VF, and the node persists
//! [`VfPool::claims`] and hands them back to [`VfPool::new`] on start. A persisted claim whose
//! VF is gone (or is claimed twice) is not fatal, unlike in metalnet: it comes back as an
//! [`UnrestoredClaim`] so the node can mark that one interface as failed and carry on.

pub(crate) mod naming;
mod pci;
mod pool;
pub mod sysfs;

#[cfg(test)]
mod pool_proptest;
#[cfg(test)]
mod sysfs_tests;

use std::path::PathBuf;

pub use naming::{
    DEFAULT_TAP_COUNT, SYNTHESIZED_FIRST_FUNCTION, SYNTHESIZED_VF_COUNT, TAP_FIRST_VF_PORT,
    TAP_NAME_PREFIX, Vf, VfLocation, representor_name, sriov_vf_index, synthesized_vfs, tap_vf,
    tap_vfs,
};
pub use pci::{
    DEFAULT_PF_BASE, MAX_DEVICE, MAX_FUNCTION, PciAddress, PciAddressError, PciAddressParts,
};
pub use pool::{PoolError, UnrestoredClaim, UnrestoredReason, VfPool};

/// Default sysfs mount point.
pub const DEFAULT_SYSFS_ROOT: &str = "/sys";

/// Where the node's VFs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfConfig {
    /// SR-IOV functions found in sysfs, or TAP devices.
    pub mode: VfMode,
}

/// How VFs are found and named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VfMode {
    /// SR-IOV VFs of Mellanox PFs found under `root` (normally `/sys`).
    Sysfs {
        /// The sysfs mount point; tests use a fake tree.
        root: PathBuf,
        /// Base of the synthesized addresses when sysfs shows no VF.
        pf_base: PciAddress,
        /// dpservice runs with a multiport eswitch: representors are named `c0pf0vf<N>`.
        multiport_eswitch: bool,
    },
    /// TAP devices `dtapvf_0 .. dtapvf_<count-1>`, dpservice ports `net_tap2 ..`.
    Tap {
        /// Number of taps.
        count: u32,
    },
}

impl VfConfig {
    /// Sysfs mode with the PF base given as text (a config value); a bad address is
    /// [`VfError::PfBase`].
    pub fn sysfs(
        root: impl Into<PathBuf>,
        pf_base: &str,
        multiport_eswitch: bool,
    ) -> Result<Self, VfError> {
        Ok(Self {
            mode: VfMode::Sysfs {
                root: root.into(),
                pf_base: pf_base.parse()?,
                multiport_eswitch,
            },
        })
    }

    /// TAP mode with `count` taps.
    pub fn tap(count: u32) -> Self {
        Self {
            mode: VfMode::Tap { count },
        }
    }
}

impl Default for VfConfig {
    /// Sysfs mode under `/sys`, PF base `0000:03:00.0`, no multiport eswitch.
    fn default() -> Self {
        Self {
            mode: VfMode::Sysfs {
                root: PathBuf::from(DEFAULT_SYSFS_ROOT),
                pf_base: DEFAULT_PF_BASE,
                multiport_eswitch: false,
            },
        }
    }
}

/// VFs cannot be discovered.
#[derive(Debug, thiserror::Error)]
pub enum VfError {
    /// A sysfs directory exists but cannot be listed.
    #[error("cannot read {path}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configured PF base is not a PCI address.
    #[error("invalid PF base address")]
    PfBase(#[from] PciAddressError),
    /// The synthesized addresses from this PF base would run past device `1f`.
    #[error(
        "PF base {pf_base}: {SYNTHESIZED_VF_COUNT} addresses from function {SYNTHESIZED_FIRST_FUNCTION} on run past device 1f"
    )]
    PfBaseRange {
        /// The configured base.
        pf_base: PciAddress,
    },
}

/// The VFs of this node, in pool order (by PF and VF index, or by tap number).
///
/// Sysfs mode: the VFs of every Mellanox network PF with SR-IOV enabled; devices with missing
/// or bad sysfs content are skipped with a log. No VF found: [`synthesized_vfs`] of `pf_base`.
/// Errors only if the PCI device directory exists but cannot be listed, or the synthesized list
/// does not fit.
pub fn discover(config: &VfConfig) -> Result<Vec<Vf>, VfError> {
    match &config.mode {
        VfMode::Sysfs {
            root,
            pf_base,
            multiport_eswitch,
        } => {
            let vfs = sysfs::scan(root, *multiport_eswitch)?;
            if !vfs.is_empty() {
                tracing::info!(root = %root.display(), vfs = vfs.len(), "SR-IOV VFs found");
                return Ok(vfs);
            }
            let vfs = synthesized_vfs(*pf_base, *multiport_eswitch)?;
            tracing::warn!(
                root = %root.display(),
                %pf_base,
                vfs = vfs.len(),
                "no SR-IOV VF found in sysfs: using synthesized VF addresses"
            );
            Ok(vfs)
        }
        VfMode::Tap { count } => {
            tracing::info!(vfs = count, "TAP mode VFs");
            Ok(tap_vfs(*count))
        }
    }
}
