//! Underlay IPv6 addresses of dataplane objects, in the real service's format:
//! own /64, 16 zero bits, 8 flag bits, 8 random bits, 32-bit counter shared by every object kind.

use std::collections::HashSet;
use std::net::Ipv6Addr;

use crate::error::{InvalidArgument, ServiceError};

/// Flag that marks an address chosen by the client (`preferred_underlay_route`); generated
/// addresses leave it clear, so the two kinds never collide.
pub const PREFERRED_FLAG: u8 = 0x80;

/// How many counter values to try before giving up on finding a free address.
const MAX_ATTEMPTS: u32 = 1024;

/// Allocates and tracks the underlay addresses in use.
#[derive(Debug)]
pub struct Underlays {
    prefix: [u8; 8],
    random: u8,
    counter: u32,
    in_use: HashSet<Ipv6Addr>,
}

impl Underlays {
    /// Addresses under the /64 of `host`, with the given random byte.
    pub fn new(host: Ipv6Addr, random: u8) -> Self {
        let o = host.octets();
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&o[..8]);
        Self {
            prefix,
            random,
            counter: 0,
            in_use: HashSet::new(),
        }
    }

    fn compose(&self, counter: u32) -> Ipv6Addr {
        let mut o = [0u8; 16];
        o[..8].copy_from_slice(&self.prefix);
        o[11] = self.random;
        o[12..].copy_from_slice(&counter.to_be_bytes());
        Ipv6Addr::from(o)
    }

    /// The /64 every address is taken from.
    pub fn prefix(&self) -> ipnet::Ipv6Net {
        let mut o = [0u8; 16];
        o[..8].copy_from_slice(&self.prefix);
        // A /64 is always a valid prefix length.
        ipnet::Ipv6Net::new(Ipv6Addr::from(o), 64).unwrap_or_default()
    }

    /// Checks a client-chosen address: inside the own /64 with the preferred flag set.
    pub fn check_preferred(
        &self,
        field: &str,
        addr: Ipv6Addr,
    ) -> Result<Ipv6Addr, InvalidArgument> {
        let o = addr.octets();
        if o[..8] != self.prefix {
            return Err(InvalidArgument::new(
                field,
                "must lie inside the dataplane's own underlay /64",
            ));
        }
        if o[10] & PREFERRED_FLAG == 0 {
            return Err(InvalidArgument::new(
                field,
                "must have flag 0x80 set in byte 10",
            ));
        }
        Ok(addr)
    }

    /// Whether `addr` is free; a collision is VNF_INSERT.
    pub fn ensure_free(&self, addr: Ipv6Addr) -> Result<(), ServiceError> {
        if self.in_use.contains(&addr) {
            Err(ServiceError::VnfInsert)
        } else {
            Ok(())
        }
    }

    /// Takes `preferred` (already checked) or the next generated address.
    pub fn allocate(&mut self, preferred: Option<Ipv6Addr>) -> Result<Ipv6Addr, ServiceError> {
        if let Some(addr) = preferred {
            self.ensure_free(addr)?;
            self.in_use.insert(addr);
            return Ok(addr);
        }
        for _ in 0..MAX_ATTEMPTS {
            self.counter = self.counter.wrapping_add(1);
            let addr = self.compose(self.counter);
            if self.in_use.insert(addr) {
                return Ok(addr);
            }
        }
        Err(ServiceError::VnfInsert)
    }

    /// Returns an address to the pool.
    pub fn release(&mut self, addr: Ipv6Addr) {
        self.in_use.remove(&addr);
    }

    /// Number of addresses in use.
    pub fn len(&self) -> usize {
        self.in_use.len()
    }

    /// Whether no address is in use.
    pub fn is_empty(&self) -> bool {
        self.in_use.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Ipv6Addr {
        "fc00:1::1".parse().expect("addr")
    }

    #[test]
    fn generated_format() {
        let mut u = Underlays::new(host(), 0x0b);
        let a = u.allocate(None).expect("alloc");
        let b = u.allocate(None).expect("alloc");
        assert_eq!(a, "fc00:1::b:0:1".parse::<Ipv6Addr>().expect("addr"));
        assert_eq!(b, "fc00:1::b:0:2".parse::<Ipv6Addr>().expect("addr"));
        u.release(a);
        assert_eq!(u.len(), 1);
    }

    #[test]
    fn preferred_rules() {
        let mut u = Underlays::new(host(), 0);
        let good: Ipv6Addr = "fc00:1::8000:0:99".parse().expect("addr");
        assert!(u.check_preferred("p", good).is_ok());
        assert!(
            u.check_preferred("p", "fc00:2::8000:0:99".parse().expect("addr"))
                .is_err()
        );
        assert!(
            u.check_preferred("p", "fc00:1::b:0:99".parse().expect("addr"))
                .is_err()
        );
        assert_eq!(u.allocate(Some(good)), Ok(good));
        assert_eq!(u.allocate(Some(good)), Err(ServiceError::VnfInsert));
    }
}
