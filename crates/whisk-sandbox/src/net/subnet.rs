//! IPv4 subnets and the allocation of container addresses inside one.
//!
//! Three operations (parse, contains/overlaps, address arithmetic) did not seem worth a new
//! dependency shared by the whole workspace, so this is a small value type of our own.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::NetError;

/// An IPv4 network such as `10.231.0.0/16`, with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Subnet {
    network: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Subnet {
    /// The subnet `network/prefix_len`. Host bits must be zero, so that a typo such as
    /// `10.1.2.3/16` is refused instead of silently meaning `10.1.0.0/16`.
    pub fn new(network: Ipv4Addr, prefix_len: u8) -> Result<Self, NetError> {
        let text = || format!("{network}/{prefix_len}");
        if prefix_len > 32 {
            return Err(NetError::InvalidSubnet {
                subnet: text(),
                reason: "the prefix length is larger than 32",
            });
        }
        let subnet = Self {
            network,
            prefix_len,
        };
        if u32::from(network) & !subnet.mask() != 0 {
            return Err(NetError::InvalidSubnet {
                subnet: text(),
                reason: "host bits are set",
            });
        }
        Ok(subnet)
    }

    /// [`Ipv4Subnet::new`] for constants: `None` where `new` would refuse.
    pub const fn from_octets(octets: [u8; 4], prefix_len: u8) -> Option<Self> {
        if prefix_len > 32 {
            return None;
        }
        let network = u32::from_be_bytes(octets);
        let host_bits = if prefix_len == 0 {
            u32::MAX
        } else {
            u32::MAX >> prefix_len
        };
        if network & host_bits != 0 {
            return None;
        }
        Some(Self {
            network: Ipv4Addr::from_bits(network),
            prefix_len,
        })
    }

    /// The network address (all host bits zero).
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The number of leading network bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0)
    }

    /// How many addresses the subnet spans, network and broadcast included.
    fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix_len))
    }

    /// Whether `address` lies inside the subnet.
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        u32::from(address) & self.mask() == u32::from(self.network)
    }

    /// Whether the two subnets share at least one address.
    pub fn overlaps(&self, other: &Ipv4Subnet) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }

    /// The address `offset` places after the network address, if it is inside the subnet.
    fn nth(&self, offset: u64) -> Option<Ipv4Addr> {
        if offset >= self.size() {
            return None;
        }
        let offset = u32::try_from(offset).ok()?;
        Some(Ipv4Addr::from(u32::from(self.network).checked_add(offset)?))
    }

    /// The gateway every container routes through: the first host address.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        if self.size() < 4 {
            return None;
        }
        self.nth(1)
    }
}

impl fmt::Display for Ipv4Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl FromStr for Ipv4Subnet {
    type Err = NetError;

    /// Parses `a.b.c.d/n`; a bare address means a `/32`.
    fn from_str(text: &str) -> Result<Self, NetError> {
        let invalid = |reason| NetError::InvalidSubnet {
            subnet: text.to_owned(),
            reason,
        };
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, prefix),
            None => (text, "32"),
        };
        let address: Ipv4Addr = address
            .parse()
            .map_err(|_| invalid("not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| invalid("the prefix length is not a number"))?;
        Self::new(address, prefix)
    }
}

/// The container addresses of a subnet: everything between the gateway and the broadcast
/// address. Released addresses are handed out again lowest first, so a long-running pool stays
/// in the low part of its subnet and the addresses in logs stay short.
#[derive(Debug)]
pub(crate) struct Addresses {
    subnet: Ipv4Subnet,
    next: u64,
    released: BTreeSet<Ipv4Addr>,
}

impl Addresses {
    /// The first container address is the one after the gateway.
    const FIRST: u64 = 2;

    pub(crate) fn new(subnet: Ipv4Subnet) -> Self {
        Self {
            subnet,
            next: Self::FIRST,
            released: BTreeSet::new(),
        }
    }

    pub(crate) fn take(&mut self) -> Option<Ipv4Addr> {
        if let Some(address) = self.released.pop_first() {
            return Some(address);
        }
        // The last address is the broadcast address.
        if self.next + 1 >= self.subnet.size() {
            return None;
        }
        let address = self.subnet.nth(self.next)?;
        self.next += 1;
        Some(address)
    }

    pub(crate) fn give_back(&mut self, address: Ipv4Addr) {
        if self.subnet.contains(address) {
            self.released.insert(address);
        }
    }
}
