//! One VF of the pool and how dpservice names it: representor names of SR-IOV VFs, the
//! synthesized fallback list, and the TAP ports.

use std::fmt;

use super::VfError;
use super::pci::PciAddress;

/// Number of VF addresses synthesized when sysfs shows none (metalnet's fallback).
pub const SYNTHESIZED_VF_COUNT: u32 = 126;
/// Function of the PF base device at which the synthesized VF addresses start.
pub const SYNTHESIZED_FIRST_FUNCTION: u8 = 3;
/// Default number of TAP VFs: the software dataplane's default number of VF ports.
pub const DEFAULT_TAP_COUNT: u32 = 126;
/// Prefix of a TAP VF's netdev name: `dtapvf_0`, `dtapvf_1`, ...
pub const TAP_NAME_PREFIX: &str = "dtapvf_";
/// The dpservice port of `dtapvf_0` is `net_tap2`: `net_tap0` and `net_tap1` are the PFs.
pub const TAP_FIRST_VF_PORT: u32 = 2;

/// Where a VF lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VfLocation {
    /// An SR-IOV virtual function (real or synthesized).
    Pci(PciAddress),
    /// A TAP device (dpservice in TAP mode, or the software dataplane).
    Tap(String),
}

/// One virtual function the node can hand to a network interface.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Vf {
    id: String,
    location: VfLocation,
    device_name: String,
}

impl Vf {
    /// An SR-IOV VF; its id is the address's canonical text (`0000:3b:00.2`).
    pub fn pci(address: PciAddress, device_name: impl Into<String>) -> Self {
        Self {
            id: address.to_string(),
            location: VfLocation::Pci(address),
            device_name: device_name.into(),
        }
    }

    /// A TAP VF; its id is the tap name.
    pub fn tap(name: impl Into<String>, device_name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            id: name.clone(),
            location: VfLocation::Tap(name),
            device_name: device_name.into(),
        }
    }

    /// The persistent key of this VF: the PCI address text or the tap name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The PCI address or the tap name.
    pub fn location(&self) -> &VfLocation {
        &self.location
    }

    /// The PCI address, for an SR-IOV VF (its status parts: [`PciAddress::parts`]).
    pub fn pci_address(&self) -> Option<PciAddress> {
        match &self.location {
            VfLocation::Pci(a) => Some(*a),
            VfLocation::Tap(_) => None,
        }
    }

    /// The tap name, for a TAP VF.
    pub fn tap_name(&self) -> Option<&str> {
        match &self.location {
            VfLocation::Pci(_) => None,
            VfLocation::Tap(name) => Some(name),
        }
    }

    /// The dpservice device name (`device_name` of CreateInterface).
    pub fn device_name(&self) -> &str {
        &self.device_name
    }
}

impl fmt::Display for Vf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id, self.device_name)
    }
}

/// dpservice's name of VF `vf_index` of `pf`: `DDDD:BB:DD.0_representor_vf<idx>`, or
/// `DDDD:BB:DD.0_representor_c0pf0vf<idx>` in multiport-eswitch mode (the PF's function is
/// always written as 0).
pub fn representor_name(pf: PciAddress, vf_index: u32, multiport_eswitch: bool) -> String {
    let kind = if multiport_eswitch { "c0pf0vf" } else { "vf" };
    format!("{}_representor_{kind}{vf_index}", pf.with_function_zero())
}

/// The SR-IOV index of `vf` under `pf` (the N of the PF's `virtfnN`): the VF's routing ID is
/// the PF's plus `offset + stride * N`. For a PF at function 0 with stride 1 and VFs on its bus
/// this is metalnet's `(device * 8 + function) - offset`. `None` if `vf` cannot be a VF of
/// `pf` with that offset and stride.
pub fn sriov_vf_index(pf: PciAddress, vf: PciAddress, offset: u32, stride: u32) -> Option<u32> {
    if pf.domain() != vf.domain() {
        return None;
    }
    let distance = u32::from(vf.routing_id()).checked_sub(u32::from(pf.routing_id()))?;
    let steps = distance.checked_sub(offset)?;
    match stride {
        0 => (steps == 0).then_some(0),
        _ => (steps % stride == 0).then_some(steps / stride),
    }
}

/// The fallback when sysfs shows no VF: [`SYNTHESIZED_VF_COUNT`] addresses from function 3 of
/// `pf_base`'s device on, functions 0..7 wrapping into the next device (`0000:03:00.3` ..
/// `0000:03:10.0` for the default base), named as VFs `0..` of `pf_base`'s device. The base's
/// function is ignored. Fails if the list would run past device `1f`.
pub fn synthesized_vfs(pf_base: PciAddress, multiport_eswitch: bool) -> Result<Vec<Vf>, VfError> {
    let first = u32::from(pf_base.device()) * 8 + u32::from(SYNTHESIZED_FIRST_FUNCTION);
    (0..SYNTHESIZED_VF_COUNT)
        .map(|index| {
            let devfn = first + index;
            let address = u8::try_from(devfn / 8)
                .ok()
                .and_then(|device| {
                    let function = u8::try_from(devfn % 8).ok()?;
                    PciAddress::new(pf_base.domain(), pf_base.bus(), device, function)
                })
                .ok_or(VfError::PfBaseRange { pf_base })?;
            let name = representor_name(pf_base, index, multiport_eswitch);
            Ok(Vf::pci(address, name))
        })
        .collect()
}

/// TAP VF `index`: tap `dtapvf_<index>`, dpservice port `net_tap<index + 2>`.
pub fn tap_vf(index: u32) -> Vf {
    Vf::tap(
        format!("{TAP_NAME_PREFIX}{index}"),
        format!("net_tap{}", u64::from(index) + u64::from(TAP_FIRST_VF_PORT)),
    )
}

/// TAP VFs `dtapvf_0` .. `dtapvf_<count - 1>`.
pub fn tap_vfs(count: u32) -> Vec<Vf> {
    (0..count).map(tap_vf).collect()
}

#[cfg(test)]
mod tests {
    use super::super::pci::DEFAULT_PF_BASE;
    use super::*;

    fn addr(text: &str) -> PciAddress {
        text.parse().expect("valid address")
    }

    #[test]
    fn representor_names_both_variants() {
        let pf = addr("0000:3b:00.0");
        assert_eq!(
            representor_name(pf, 0, false),
            "0000:3b:00.0_representor_vf0"
        );
        assert_eq!(
            representor_name(pf, 17, true),
            "0000:3b:00.0_representor_c0pf0vf17"
        );
        // the PF's function is always written as 0; the device stays hex
        assert_eq!(
            representor_name(addr("0001:af:0a.1"), 3, false),
            "0001:af:0a.0_representor_vf3"
        );
    }

    #[test]
    fn vf_index_from_offset() {
        let pf = addr("0000:3b:00.0");
        assert_eq!(sriov_vf_index(pf, addr("0000:3b:00.2"), 2, 1), Some(0));
        assert_eq!(sriov_vf_index(pf, addr("0000:3b:00.7"), 2, 1), Some(5));
        // metalnet's formula: (device * 8 + function) - offset
        assert_eq!(sriov_vf_index(pf, addr("0000:3b:01.0"), 2, 1), Some(6));
        assert_eq!(sriov_vf_index(pf, addr("0000:3b:0f.7"), 2, 1), Some(125));
        assert_eq!(sriov_vf_index(pf, addr("0000:3b:10.0"), 2, 1), Some(126));
        assert_eq!(sriov_vf_index(pf, addr("0000:3b:01.0"), 8, 1), Some(0));
        // below the offset, another domain, or off the stride: not a VF of this PF
        assert_eq!(sriov_vf_index(pf, addr("0000:3b:00.1"), 2, 1), None);
        assert_eq!(sriov_vf_index(pf, addr("0001:3b:00.2"), 2, 1), None);
        assert_eq!(sriov_vf_index(pf, addr("0000:3b:00.3"), 2, 2), None);
        assert_eq!(sriov_vf_index(pf, addr("0000:3b:00.4"), 2, 2), Some(1));
        assert_eq!(sriov_vf_index(pf, addr("0000:3b:00.2"), 2, 0), Some(0));
        assert_eq!(sriov_vf_index(pf, addr("0000:3b:00.3"), 2, 0), None);
        // a second PF counts from its own routing ID; VFs may continue on the next bus
        assert_eq!(
            sriov_vf_index(addr("0000:3b:00.1"), addr("0000:3b:01.2"), 9, 1),
            Some(0)
        );
        assert_eq!(
            sriov_vf_index(pf, addr("0000:3c:00.0"), 2, 1),
            Some(256 - 2)
        );
    }

    #[test]
    fn synthesized_list_boundaries() {
        let vfs = synthesized_vfs(DEFAULT_PF_BASE, false).expect("fits");
        assert_eq!(vfs.len(), 126);
        assert_eq!(vfs[0].id(), "0000:03:00.3");
        assert_eq!(vfs[0].device_name(), "0000:03:00.0_representor_vf0");
        assert_eq!(vfs[4].id(), "0000:03:00.7");
        assert_eq!(vfs[5].id(), "0000:03:01.0");
        assert_eq!(vfs[5].device_name(), "0000:03:00.0_representor_vf5");
        // devices >= 0x0a are hex: (0x0a * 8 + 0) - 3 = 77
        assert_eq!(vfs[77].id(), "0000:03:0a.0");
        assert_eq!(vfs[77].device_name(), "0000:03:00.0_representor_vf77");
        assert_eq!(vfs[124].id(), "0000:03:0f.7");
        assert_eq!(vfs[125].id(), "0000:03:10.0");
        assert_eq!(vfs[125].device_name(), "0000:03:00.0_representor_vf125");
        for vf in &vfs {
            let a = vf.pci_address().expect("pci");
            let index = u32::from(a.devfn()) - 3;
            assert_eq!(
                vf.device_name(),
                format!("0000:03:00.0_representor_vf{index}")
            );
            assert_eq!(vf.id().parse::<PciAddress>(), Ok(a));
        }
    }

    #[test]
    fn synthesized_multiport_and_other_base() {
        let vfs = synthesized_vfs(addr("0000:5e:00.1"), true).expect("fits");
        assert_eq!(vfs[0].id(), "0000:5e:00.3");
        assert_eq!(vfs[0].device_name(), "0000:5e:00.0_representor_c0pf0vf0");
        assert_eq!(
            vfs[125].device_name(),
            "0000:5e:00.0_representor_c0pf0vf125"
        );
        // from another device the indexes still count from 0
        let vfs = synthesized_vfs(addr("0000:03:02.0"), false).expect("fits");
        assert_eq!(vfs[0].id(), "0000:03:02.3");
        assert_eq!(vfs[0].device_name(), "0000:03:02.0_representor_vf0");
        assert_eq!(vfs[125].id(), "0000:03:12.0");
    }

    #[test]
    fn synthesized_past_device_1f_fails() {
        assert!(synthesized_vfs(addr("0000:03:0f.0"), false).is_ok());
        let err = synthesized_vfs(addr("0000:03:10.0"), false).expect_err("too far");
        assert!(matches!(err, VfError::PfBaseRange { .. }), "{err}");
    }

    #[test]
    fn tap_names() {
        let vfs = tap_vfs(DEFAULT_TAP_COUNT);
        assert_eq!(vfs.len(), 126);
        assert_eq!(vfs[0].id(), "dtapvf_0");
        assert_eq!(vfs[0].tap_name(), Some("dtapvf_0"));
        assert_eq!(vfs[0].pci_address(), None);
        assert_eq!(vfs[0].device_name(), "net_tap2");
        assert_eq!(vfs[125].id(), "dtapvf_125");
        assert_eq!(vfs[125].device_name(), "net_tap127");
        assert_eq!(tap_vf(u32::MAX).device_name(), "net_tap4294967297");
        assert!(tap_vfs(0).is_empty());
    }

    #[test]
    fn pci_vf_accessors() {
        let vf = Vf::pci(addr("0000:3b:00.2"), "0000:3b:00.0_representor_vf0");
        assert_eq!(vf.id(), "0000:3b:00.2");
        assert_eq!(vf.tap_name(), None);
        assert_eq!(vf.pci_address().map(|a| a.parts().bus), Some("3b".into()));
        assert_eq!(
            vf.to_string(),
            "0000:3b:00.2 (0000:3b:00.0_representor_vf0)"
        );
    }
}
