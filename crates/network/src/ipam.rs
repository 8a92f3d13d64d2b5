//! Address arithmetic for IPAM: CIDRs, allocation pools, gateways and EUI-64 addresses, on
//! addresses held as `u128` so IPv4 and IPv6 share one code path. No I/O: the manager
//! picks a candidate here and the database's unique key decides who gets it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

/// A subnet's prefix, validated as Neutron validates `cidr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub net: IpNet,
}

/// An inclusive range of addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub first: u128,
    pub last: u128,
}

pub fn version(ip: &IpAddr) -> i64 {
    if ip.is_ipv4() { 4 } else { 6 }
}

pub fn to_u128(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(*a)),
        IpAddr::V6(a) => u128::from(*a),
    }
}

pub fn from_u128(v: u128, ip_version: i64) -> IpAddr {
    if ip_version == 4 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

/// Parses an address; IPv6 comes back in its canonical (compressed) form.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    IpAddr::from_str(s.trim()).ok()
}

/// A prefix as security-group rules and address pairs take it: host bits allowed, a bare
/// address meaning a single host.
pub fn parse_prefix(s: &str) -> Option<IpNet> {
    let s = s.trim();
    IpNet::from_str(s)
        .ok()
        .or_else(|| parse_ip(s).map(IpNet::from))
}

impl Cidr {
    /// Parses `a.b.c.d/n` or `x::/n`. A host address with a prefix (`10.0.0.5/24`) is
    /// refused as Neutron refuses it, naming the network it meant.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let net =
            IpNet::from_str(s.trim()).map_err(|_| format!("'{s}' is not a valid IP subnet"))?;
        if net.trunc() != net {
            return Err(format!(
                "'{s}' isn't a recognized IP subnet cidr, '{}' is recommended",
                net.trunc()
            ));
        }
        Ok(Cidr { net })
    }

    pub fn version(&self) -> i64 {
        match self.net {
            IpNet::V4(_) => 4,
            IpNet::V6(_) => 6,
        }
    }

    pub fn prefix_len(&self) -> u8 {
        self.net.prefix_len()
    }

    pub fn first(&self) -> u128 {
        to_u128(&self.net.network())
    }

    pub fn last(&self) -> u128 {
        to_u128(&self.net.broadcast())
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.net.contains(ip)
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    /// The addresses a port may hold: IPv4 loses its network and broadcast addresses
    /// (except on /31 and /32), IPv6 its subnet-router anycast address.
    pub fn usable(&self) -> Option<Range> {
        let (first, last) = (self.first(), self.last());
        let (lo, hi) = if self.version() == 4 {
            if self.prefix_len() >= 31 {
                (first, last)
            } else {
                (first + 1, last - 1)
            }
        } else if self.prefix_len() == 128 {
            (first, last)
        } else {
            (first + 1, last)
        };
        (lo <= hi).then_some(Range {
            first: lo,
            last: hi,
        })
    }

    /// Neutron's default gateway: the first usable address.
    pub fn default_gateway(&self) -> Option<IpAddr> {
        self.usable().map(|r| from_u128(r.first, self.version()))
    }

    /// Neutron's default allocation pools: the usable range without the gateway.
    pub fn default_pools(&self, gateway: Option<&IpAddr>) -> Vec<Range> {
        let Some(r) = self.usable() else {
            return Vec::new();
        };
        match gateway.map(to_u128) {
            Some(g) if g >= r.first && g <= r.last => {
                let mut out = Vec::new();
                if g > r.first {
                    out.push(Range {
                        first: r.first,
                        last: g - 1,
                    });
                }
                if g < r.last {
                    out.push(Range {
                        first: g + 1,
                        last: r.last,
                    });
                }
                out
            }
            _ => vec![r],
        }
    }

    /// The modified EUI-64 address of `mac` in this /64 (SLAAC), if `mac` parses.
    pub fn eui64(&self, mac: &str) -> Option<IpAddr> {
        let bytes: Vec<u8> = mac
            .split(':')
            .map(|b| u8::from_str_radix(b, 16))
            .collect::<Result<_, _>>()
            .ok()?;
        let [a, b, c, d, e, f] = bytes.as_slice() else {
            return None;
        };
        let iid = u64::from_be_bytes([a ^ 0x02, *b, *c, 0xff, 0xfe, *d, *e, *f]);
        Some(from_u128(self.first() | u128::from(iid), 6))
    }
}

impl Range {
    pub fn len(&self) -> u128 {
        self.last - self.first + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, v: u128) -> bool {
        v >= self.first && v <= self.last
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

/// Up to `want` free addresses of `pools`, in order, skipping `taken` (sorted).
pub fn free_candidates(pools: &[Range], taken: &[u128], want: usize) -> Vec<u128> {
    let mut out = Vec::new();
    for p in pools {
        let mut v = p.first;
        // Jump over allocated addresses with a binary search rather than walking them.
        let mut i = taken.partition_point(|t| *t < v);
        while v <= p.last && out.len() < want {
            if i < taken.len() && taken[i] == v {
                i += 1;
            } else {
                out.push(v);
            }
            if v == u128::MAX {
                break;
            }
            v += 1;
        }
        if out.len() >= want {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_bits_are_refused_with_a_recommendation() {
        let e = Cidr::parse("10.0.0.5/24").unwrap_err();
        assert!(e.contains("'10.0.0.0/24' is recommended"), "{e}");
        assert!(Cidr::parse("nonsense").is_err());
    }

    #[test]
    fn default_pools_skip_network_broadcast_and_gateway() {
        let c = Cidr::parse("10.0.0.0/29").unwrap();
        let gw = c.default_gateway().unwrap();
        assert_eq!(gw.to_string(), "10.0.0.1");
        let p = c.default_pools(Some(&gw));
        assert_eq!(p.len(), 1);
        assert_eq!(from_u128(p[0].first, 4).to_string(), "10.0.0.2");
        assert_eq!(from_u128(p[0].last, 4).to_string(), "10.0.0.6");
        let c6 = Cidr::parse("2001:db8::/64").unwrap();
        assert_eq!(c6.default_gateway().unwrap().to_string(), "2001:db8::1");
        let p6 = c6.default_pools(c6.default_gateway().as_ref());
        assert_eq!(
            from_u128(p6[0].last, 6).to_string(),
            "2001:db8::ffff:ffff:ffff:ffff"
        );
    }

    #[test]
    fn candidates_skip_taken_addresses() {
        let pools = [Range {
            first: 10,
            last: 15,
        }];
        assert_eq!(free_candidates(&pools, &[10, 11, 13], 2), vec![12, 14]);
        assert!(free_candidates(&pools, &[10, 11, 12, 13, 14, 15], 1).is_empty());
    }

    #[test]
    fn eui64_flips_the_universal_bit() {
        let c = Cidr::parse("2001:db8::/64").unwrap();
        assert_eq!(
            c.eui64("fa:16:3e:12:34:56").unwrap().to_string(),
            "2001:db8::f816:3eff:fe12:3456"
        );
    }
}
