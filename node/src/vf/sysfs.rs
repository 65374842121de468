//! Discovery of SR-IOV VFs in sysfs.
//!
//! Under `<root>/bus/pci/devices/<DDDD:BB:DD.F>/` a PF qualifies if its `vendor` is `0x15b3`
//! (Mellanox/NVIDIA), its `class` starts with `0x02` (network), and `sriov_numvfs`,
//! `sriov_totalvfs`, `sriov_offset` and `sriov_stride` all read as integers with
//! `sriov_numvfs > 0`. Its `virtfnN` links lead to its VFs (the link target's last component is
//! the VF's address); a VF's `physfn` link, when present, must lead back to the PF. Anything
//! missing or malformed skips that device or VF with a log, never the whole scan.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::VfError;
use super::naming::{Vf, representor_name, sriov_vf_index};
use super::pci::PciAddress;

/// PCI vendor ID of Mellanox / NVIDIA networking, as sysfs writes it.
pub const MELLANOX_VENDOR: &str = "0x15b3";
/// Prefix of the `class` of a network controller.
pub const NETWORK_CLASS_PREFIX: &str = "0x02";

/// The SR-IOV attributes of a PF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sriov {
    numvfs: u32,
    totalvfs: u32,
    offset: u32,
    stride: u32,
}

/// The VFs of every qualifying PF under `root`, ordered by PF address and VF index. A missing
/// `<root>/bus/pci/devices` is no VF; one that cannot be listed is an error.
pub fn scan(root: &Path, multiport_eswitch: bool) -> Result<Vec<Vf>, VfError> {
    let devices = root.join("bus").join("pci").join("devices");
    let mut pfs = Vec::new();
    let entries = match fs::read_dir(&devices) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tracing::debug!(path = %devices.display(), "no PCI device directory");
            return Ok(Vec::new());
        }
        Err(source) => {
            return Err(VfError::Io {
                path: devices,
                source,
            });
        }
    };
    for entry in entries {
        let entry = entry.map_err(|source| VfError::Io {
            path: devices.clone(),
            source,
        })?;
        let name = entry.file_name();
        match name.to_str().map(str::parse::<PciAddress>) {
            Some(Ok(address)) => pfs.push((address, entry.path())),
            _ => tracing::debug!(entry = ?name, "not a PCI address: skipped"),
        }
    }
    pfs.sort();
    let mut vfs: Vec<Vf> = Vec::new();
    let mut names = HashSet::new();
    for (address, dir) in pfs {
        if let Some(sriov) = qualifying_pf(address, &dir) {
            for vf in pf_vfs(address, &dir, sriov, multiport_eswitch) {
                // representor names only distinguish PFs by device: the VFs of a second PF of
                // the same device would get the first PF's names
                if names.insert(vf.device_name().to_string()) {
                    vfs.push(vf);
                } else {
                    tracing::warn!(vf = %vf, "another VF has this device name: skipped");
                }
            }
        }
    }
    Ok(vfs)
}

/// Reads a sysfs attribute, trimmed.
fn read_attr(dir: &Path, name: &str) -> io::Result<String> {
    fs::read_to_string(dir.join(name)).map(|s| s.trim().to_string())
}

/// The SR-IOV attributes if `dir` is a Mellanox network PF with VFs enabled; else `None` with
/// a log saying why.
fn qualifying_pf(address: PciAddress, dir: &Path) -> Option<Sriov> {
    let vendor = match read_attr(dir, "vendor") {
        Ok(v) => v,
        Err(e) => {
            tracing::debug!(device = %address, error = %e, "no readable vendor: skipped");
            return None;
        }
    };
    if !vendor.eq_ignore_ascii_case(MELLANOX_VENDOR) {
        tracing::trace!(device = %address, vendor, "not Mellanox: skipped");
        return None;
    }
    match read_attr(dir, "class") {
        Ok(class) if class.starts_with(NETWORK_CLASS_PREFIX) => {}
        Ok(class) => {
            tracing::debug!(device = %address, class, "Mellanox but not a network device: skipped");
            return None;
        }
        Err(e) => {
            tracing::debug!(device = %address, error = %e, "no readable class: skipped");
            return None;
        }
    }
    if fs::symlink_metadata(dir.join("physfn")).is_ok() {
        tracing::trace!(device = %address, "a VF itself: skipped as PF");
        return None;
    }
    let mut values = [0u32; 4];
    let names = [
        "sriov_numvfs",
        "sriov_totalvfs",
        "sriov_offset",
        "sriov_stride",
    ];
    for (value, name) in values.iter_mut().zip(names) {
        match read_attr(dir, name) {
            Ok(text) => match text.parse::<u32>() {
                Ok(n) => *value = n,
                Err(_) => {
                    tracing::warn!(device = %address, file = name, content = text, "SR-IOV attribute is not an integer: PF skipped");
                    return None;
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::debug!(device = %address, file = name, "Mellanox network device without SR-IOV attribute: skipped");
                return None;
            }
            Err(e) => {
                tracing::warn!(device = %address, file = name, error = %e, "cannot read SR-IOV attribute: PF skipped");
                return None;
            }
        }
    }
    let [numvfs, totalvfs, offset, stride] = values;
    if numvfs == 0 {
        tracing::debug!(device = %address, totalvfs, "SR-IOV PF with no VF enabled: skipped");
        return None;
    }
    Some(Sriov {
        numvfs,
        totalvfs,
        offset,
        stride,
    })
}

/// The last path component of a link's target as a PCI address.
fn link_address(link: &Path) -> Result<PciAddress, String> {
    let target = fs::read_link(link).map_err(|e| format!("cannot read link: {e}"))?;
    let last = target
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("link target {} has no name", target.display()))?;
    last.parse()
        .map_err(|e: super::pci::PciAddressError| e.to_string())
}

/// The `virtfnN` links of a PF dir, sorted by N.
fn virtfn_links(pf: PciAddress, dir: &Path) -> Vec<(u32, PathBuf)> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(pf = %pf, error = %e, "cannot list PF directory: PF skipped");
            return Vec::new();
        }
    };
    let mut links: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let n = name.to_str()?.strip_prefix("virtfn")?.parse().ok()?;
            Some((n, entry.path()))
        })
        .collect();
    links.sort();
    links
}

/// The VFs of one PF, with their representor names.
fn pf_vfs(pf: PciAddress, dir: &Path, sriov: Sriov, multiport_eswitch: bool) -> Vec<Vf> {
    let links = virtfn_links(pf, dir);
    if links.len() != sriov.numvfs as usize {
        tracing::debug!(pf = %pf, numvfs = sriov.numvfs, links = links.len(), "virtfn links differ from sriov_numvfs");
    }
    let mut vfs = Vec::with_capacity(links.len());
    for (n, link) in links {
        let vf = match link_address(&link) {
            Ok(vf) => vf,
            Err(reason) => {
                tracing::warn!(pf = %pf, link = %link.display(), reason, "VF link skipped");
                continue;
            }
        };
        match link_address(&link.join("physfn")) {
            Ok(physfn) if physfn != pf => {
                tracing::warn!(pf = %pf, %vf, %physfn, "VF's physfn is another PF: skipped");
                continue;
            }
            Ok(_) => {}
            Err(reason) => {
                tracing::debug!(pf = %pf, %vf, reason, "no physfn link: using the PF that lists it");
            }
        }
        let Some(index) = sriov_vf_index(pf, vf, sriov.offset, sriov.stride) else {
            tracing::warn!(pf = %pf, %vf, offset = sriov.offset, stride = sriov.stride, "VF address does not match the PF's SR-IOV offset: skipped");
            continue;
        };
        if index != n {
            tracing::warn!(pf = %pf, %vf, index, virtfn = n, "VF index from the SR-IOV offset differs from its virtfn number");
        }
        vfs.push(Vf::pci(vf, representor_name(pf, index, multiport_eswitch)));
    }
    tracing::debug!(pf = %pf, vfs = vfs.len(), totalvfs = sriov.totalvfs, "SR-IOV PF");
    vfs
}
