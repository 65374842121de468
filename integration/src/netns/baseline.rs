//! The benchmark's baseline: "VM1 - router1 - fabric - router2 - VM2" routed by the kernel
//! alone, with the VMs configured exactly as behind a dataplane (a /32 and /128, gateways
//! 169.254.0.1 and fe80::1), so that the same vmtool commands run on both.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Fabric, FabricNode, Vm};

/// The VM end of each router's veth (inside the VM namespace).
const VM_LINK: &str = "eth0";

/// Two VMs behind two kernel routers on a two-node [`Fabric`]. IPv4 crosses the IPv6-only
/// fabric with IPv6 next hops (RFC 5549 routes), IPv6 natively; forwarding is on in the
/// routers only.
#[derive(Debug)]
pub struct KernelPair {
    // The VMs drop before the fabric: their veths' peers live in the routers.
    vms: [Vm; 2],
    fabric: Fabric,
    v4: [Ipv4Addr; 2],
    v6: [Ipv6Addr; 2],
}

impl KernelPair {
    /// VM `i` (1 or 2). Panics otherwise.
    pub fn vm(&self, i: usize) -> &Vm {
        &self.vms[index(i)]
    }

    /// The router in front of VM `i` (fabric node `i`).
    pub fn router(&self, i: usize) -> &FabricNode {
        self.fabric.node(i)
    }

    /// VM `i`'s IPv4 address, `10.200.{i}.2`.
    pub fn v4(&self, i: usize) -> Ipv4Addr {
        self.v4[index(i)]
    }

    /// VM `i`'s IPv6 address, `fd10:0:{i}::2`.
    pub fn v6(&self, i: usize) -> Ipv6Addr {
        self.v6[index(i)]
    }

    /// The fabric between the routers.
    pub fn fabric(&self) -> &Fabric {
        &self.fabric
    }
}

fn index(i: usize) -> usize {
    assert!(
        i == 1 || i == 2,
        "kernel pair VM {i}: there are VMs 1 and 2"
    );
    i - 1
}

/// Builds the baseline with every link (fabric and VM veths) at `mtu`, so that nothing is
/// fragmented or refused on the way.
pub fn kernel_pair(mtu: u32) -> anyhow::Result<KernelPair> {
    let fabric = Fabric::new(2, mtu)?;
    let m = mtu.to_string();
    let v4 = [1u8, 2].map(|i| Ipv4Addr::new(10, 200, i, 2));
    let v6 = [1u16, 2].map(|i| Ipv6Addr::new(0xfd10, 0, i, 0, 0, 0, 0, 2));
    let mut vms = Vec::new();
    for i in 1..=2usize {
        let own = fabric.node(i);
        let r = &own.netns;
        let peer = fabric.node(3 - i);
        r.sysctl(&[
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            // IPv4 arrives on ul0, which has no IPv4 address: no reverse-path games.
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ])?;
        let down = format!("vm{i}");
        r.ip(&[
            "link", "add", &down, "mtu", &m, "type", "veth", "peer", "name", VM_LINK, "mtu", &m,
        ])?;
        r.ip(&["link", "set", &down, "up"])?;
        // The router answers for the gateways a dataplane would.
        r.ip(&["addr", "add", "169.254.0.1/32", "dev", &down])?;
        r.ip(&["-6", "addr", "add", "fe80::1/64", "dev", &down, "nodad"])?;
        r.ip(&["route", "add", &format!("{}/32", v4[i - 1]), "dev", &down])?;
        r.ip(&[
            "-6",
            "route",
            "add",
            &format!("{}/128", v6[i - 1]),
            "dev",
            &down,
        ])?;
        let via = peer.fabric_addr.to_string();
        r.ip(&[
            "route",
            "add",
            &format!("{}/32", v4[2 - i]),
            "via",
            "inet6",
            &via,
            "dev",
            own.link,
        ])?;
        r.ip(&[
            "-6",
            "route",
            "add",
            &format!("{}/128", v6[2 - i]),
            "via",
            &via,
            "dev",
            own.link,
        ])?;
        let vm = Vm::adopt(&format!("vm{i}"), VM_LINK, Some(r))?;
        vm.configure_v4(v4[i - 1])?;
        vm.configure_v6(v6[i - 1])?;
        vms.push(vm);
    }
    let [vm1, vm2]: [Vm; 2] = vms
        .try_into()
        .map_err(|_| anyhow::anyhow!("kernel pair: expected two VMs"))?;
    Ok(KernelPair {
        vms: [vm1, vm2],
        fabric,
        v4,
        v6,
    })
}
