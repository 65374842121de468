//! PCI addresses (`DDDD:BB:DD.F`): parsing with a precise error, canonical lowercase-hex
//! display, the four strings of the node's status, and serde as text for config keys.

use std::fmt;
use std::str::FromStr;

/// Highest PCI device (slot) number: 5 bits.
pub const MAX_DEVICE: u8 = 0x1f;
/// Highest PCI function number: 3 bits.
pub const MAX_FUNCTION: u8 = 7;

/// The PF base of synthesized VF addresses when none is configured (metalnet's default).
pub const DEFAULT_PF_BASE: PciAddress = PciAddress {
    domain: 0,
    bus: 3,
    device: 0,
    function: 0,
};

/// A PCI address `domain:bus:device.function`, all hexadecimal.
///
/// The device is at most `1f` and the function at most `7`; the constructors enforce it.
/// Ordered by domain, bus, device, function, i.e. by routing ID within a domain.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct PciAddress {
    domain: u32,
    bus: u8,
    device: u8,
    function: u8,
}

/// The four parts of a PCI address as text, as the node reports them in an interface's status:
/// domain `0000`, bus `3b`, slot `00`, function `2`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PciAddressParts {
    /// Four (or more) lowercase hex digits.
    pub domain: String,
    /// Two lowercase hex digits.
    pub bus: String,
    /// The device number, two lowercase hex digits.
    pub slot: String,
    /// One digit.
    pub function: String,
}

/// Text that is not a PCI address; each variant names the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PciAddressError {
    /// Not of the shape `DDDD:BB:DD.F`.
    #[error(
        "{text:?} is not a PCI address: expected DDDD:BB:DD.F (hex domain:bus:device.function)"
    )]
    Format {
        /// The whole text.
        text: String,
    },
    /// The domain is not 1 to 8 hex digits.
    #[error("PCI address {text:?}: domain {part:?} is not 1 to 8 hex digits")]
    Domain {
        /// The whole text.
        text: String,
        /// The domain part.
        part: String,
    },
    /// The bus is not 1 or 2 hex digits.
    #[error("PCI address {text:?}: bus {part:?} is not a hex number from 00 to ff")]
    Bus {
        /// The whole text.
        text: String,
        /// The bus part.
        part: String,
    },
    /// The device is not hex or above `1f`.
    #[error("PCI address {text:?}: device {part:?} is not a hex number from 00 to 1f")]
    Device {
        /// The whole text.
        text: String,
        /// The device part.
        part: String,
    },
    /// The function is not a digit from 0 to 7.
    #[error("PCI address {text:?}: function {part:?} is not a digit from 0 to 7")]
    Function {
        /// The whole text.
        text: String,
        /// The function part.
        part: String,
    },
}

impl PciAddress {
    /// The address, or `None` if `device > 0x1f` or `function > 7`.
    pub const fn new(domain: u32, bus: u8, device: u8, function: u8) -> Option<Self> {
        if device > MAX_DEVICE || function > MAX_FUNCTION {
            return None;
        }
        Some(Self {
            domain,
            bus,
            device,
            function,
        })
    }

    /// The PCI domain (segment).
    pub const fn domain(&self) -> u32 {
        self.domain
    }

    /// The bus number.
    pub const fn bus(&self) -> u8 {
        self.bus
    }

    /// The device (slot) number, at most `0x1f`.
    pub const fn device(&self) -> u8 {
        self.device
    }

    /// The function number, at most 7.
    pub const fn function(&self) -> u8 {
        self.function
    }

    /// `device * 8 + function`: the low byte of the routing ID.
    pub const fn devfn(&self) -> u8 {
        (self.device << 3) | self.function
    }

    /// The 16-bit routing ID within the domain: `bus << 8 | device << 3 | function`.
    pub const fn routing_id(&self) -> u16 {
        ((self.bus as u16) << 8) | self.devfn() as u16
    }

    /// The same domain, bus and device with function 0 (the port a representor name uses).
    pub const fn with_function_zero(&self) -> Self {
        Self {
            function: 0,
            ..*self
        }
    }

    /// The four parts as text for the node's status (`0000`, `3b`, `00`, `2`).
    pub fn parts(&self) -> PciAddressParts {
        PciAddressParts {
            domain: format!("{:04x}", self.domain),
            bus: format!("{:02x}", self.bus),
            slot: format!("{:02x}", self.device),
            function: format!("{:x}", self.function),
        }
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

fn hex_part(part: &str, max_digits: usize) -> Option<u32> {
    if part.is_empty() || part.len() > max_digits || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(part, 16).ok()
}

impl FromStr for PciAddress {
    type Err = PciAddressError;

    /// Parses `DDDD:BB:DD.F`, every part hexadecimal (either case); leading and trailing
    /// whitespace is not accepted.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let format = || PciAddressError::Format {
            text: text.to_string(),
        };
        let (domain, rest) = text.split_once(':').ok_or_else(format)?;
        let (bus, rest) = rest.split_once(':').ok_or_else(format)?;
        let (device, function) = rest.split_once('.').ok_or_else(format)?;
        let owned = |part: &str| (text.to_string(), part.to_string());
        let domain_n = hex_part(domain, 8).ok_or_else(|| {
            let (text, part) = owned(domain);
            PciAddressError::Domain { text, part }
        })?;
        let bus_n = hex_part(bus, 2)
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| {
                let (text, part) = owned(bus);
                PciAddressError::Bus { text, part }
            })?;
        let device_n = hex_part(device, 2)
            .and_then(|n| u8::try_from(n).ok())
            .filter(|&n| n <= MAX_DEVICE)
            .ok_or_else(|| {
                let (text, part) = owned(device);
                PciAddressError::Device { text, part }
            })?;
        let function_n = hex_part(function, 1)
            .and_then(|n| u8::try_from(n).ok())
            .filter(|&n| n <= MAX_FUNCTION)
            .ok_or_else(|| {
                let (text, part) = owned(function);
                PciAddressError::Function { text, part }
            })?;
        Ok(Self {
            domain: domain_n,
            bus: bus_n,
            device: device_n,
            function: function_n,
        })
    }
}

impl TryFrom<String> for PciAddress {
    type Error = PciAddressError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<PciAddress> for String {
    fn from(address: PciAddress) -> Self {
        address.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> PciAddress {
        text.parse().expect("valid address")
    }

    #[test]
    fn parse_and_display_round_trip() {
        let a = addr("0000:3b:00.2");
        assert_eq!(
            (a.domain(), a.bus(), a.device(), a.function()),
            (0, 0x3b, 0, 2)
        );
        assert_eq!(a.to_string(), "0000:3b:00.2");
        assert_eq!(DEFAULT_PF_BASE.to_string(), "0000:03:00.0");
        assert_eq!(addr("0000:03:00.0"), DEFAULT_PF_BASE);
    }

    #[test]
    fn device_is_hex_both_ways() {
        let a = addr("0000:03:0a.0");
        assert_eq!(a.device(), 10);
        assert_eq!(a.to_string(), "0000:03:0a.0");
        let b = addr("0000:03:10.7");
        assert_eq!((b.device(), b.function()), (16, 7));
        assert_eq!(b.to_string(), "0000:03:10.7");
        assert_eq!(addr("0000:03:1f.0").device(), 0x1f);
    }

    #[test]
    fn upper_case_and_short_parts_are_canonicalized() {
        assert_eq!(addr("0000:3B:0A.1").to_string(), "0000:3b:0a.1");
        assert_eq!(addr("0:3:a.1").to_string(), "0000:03:0a.1");
        assert_eq!(addr("10000:00:01.0").to_string(), "10000:00:01.0");
    }

    #[test]
    fn errors_name_the_wrong_part() {
        let err = |t: &str| t.parse::<PciAddress>().expect_err(t);
        assert!(matches!(err("0000:3b:00"), PciAddressError::Format { .. }));
        assert!(matches!(err(""), PciAddressError::Format { .. }));
        assert!(matches!(err("x:3b:00.0"), PciAddressError::Domain { part, .. } if part == "x"));
        assert!(matches!(
            err("123456789:3b:00.0"),
            PciAddressError::Domain { .. }
        ));
        assert!(matches!(err("0000:100:00.0"), PciAddressError::Bus { part, .. } if part == "100"));
        assert!(matches!(err("0000::00.0"), PciAddressError::Bus { .. }));
        assert!(
            matches!(err("0000:3b:20.0"), PciAddressError::Device { part, .. } if part == "20")
        );
        assert!(matches!(
            err("0000:3b:+1.0"),
            PciAddressError::Device { .. }
        ));
        assert!(
            matches!(err("0000:3b:00.8"), PciAddressError::Function { part, .. } if part == "8")
        );
        assert!(matches!(
            err("0000:3b:00.0.1"),
            PciAddressError::Function { .. }
        ));
        assert!(matches!(
            err(" 0000:3b:00.0"),
            PciAddressError::Domain { .. }
        ));
        let message = err("0000:3b:20.0").to_string();
        assert!(message.contains("device \"20\""), "{message}");
    }

    #[test]
    fn new_enforces_ranges() {
        assert_eq!(PciAddress::new(0, 3, 0, 0), Some(DEFAULT_PF_BASE));
        assert_eq!(PciAddress::new(0, 3, 0x20, 0), None);
        assert_eq!(PciAddress::new(0, 3, 0, 8), None);
    }

    #[test]
    fn routing_id_and_parts() {
        let a = addr("0000:3b:01.2");
        assert_eq!(a.devfn(), 10);
        assert_eq!(a.routing_id(), 0x3b0a);
        assert_eq!(a.with_function_zero().to_string(), "0000:3b:01.0");
        assert_eq!(
            a.parts(),
            PciAddressParts {
                domain: "0000".into(),
                bus: "3b".into(),
                slot: "01".into(),
                function: "2".into(),
            }
        );
    }

    #[test]
    fn serde_as_text() {
        let json = serde_json::to_string(&addr("0000:3b:00.2")).expect("serialize");
        assert_eq!(json, "\"0000:3b:00.2\"");
        let back: PciAddress = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, addr("0000:3b:00.2"));
        let bad = serde_json::from_str::<PciAddress>("\"0000:3b:00.9\"").expect_err("bad");
        assert!(bad.to_string().contains("function \"9\""), "{bad}");
    }
}
