//! CIDR set difference. dpservice has ACCEPT rules only, so an `ipBlock` with `except` cannot
//! be an accept plus a deny; it becomes one accept per prefix of `cidr` minus the excepts.

use ipnet::IpNet;

/// The addresses of `cidr` that are in no `except`, as the fewest prefixes: each result is the
/// largest aligned block inside the difference, so no two results could merge into one. The
/// results are disjoint and ascending. Host bits of the inputs are ignored; excepts of the other
/// family or outside `cidr` take nothing away.
pub fn cidr_difference(cidr: IpNet, except: &[IpNet]) -> Vec<IpNet> {
    let cidr = cidr.trunc();
    let relevant: Vec<IpNet> = except
        .iter()
        .map(IpNet::trunc)
        .filter(|e| overlaps(&cidr, e))
        .collect();
    let mut out = Vec::new();
    subtract(cidr, &relevant, &mut out);
    out
}

/// Whether two prefixes share an address: for CIDRs that means one contains the other.
pub(crate) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

/// `net` minus `except` (all overlapping `net`'s parent), appended to `out` in address order.
/// Halving stops as soon as a half is untouched, which is what makes each result maximal.
fn subtract(net: IpNet, except: &[IpNet], out: &mut Vec<IpNet>) {
    if except.iter().any(|e| e.contains(&net)) {
        return;
    }
    let inside: Vec<IpNet> = except.iter().copied().filter(|e| net.contains(e)).collect();
    if inside.is_empty() {
        out.push(net);
        return;
    }
    // An except strictly inside `net` means `net` is not a host prefix, so it has halves.
    let Some((low, high)) = halves(net) else {
        return;
    };
    subtract(low, &inside, out);
    subtract(high, &inside, out);
}

fn halves(net: IpNet) -> Option<(IpNet, IpNet)> {
    let mut parts = net.subnets(net.prefix_len().checked_add(1)?).ok()?;
    Some((parts.next()?, parts.next()?))
}
