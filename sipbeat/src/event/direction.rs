//! `network.direction`, as Packetbeat derives it: `ingress` or `egress`
//! when one end is this node (one of its addresses, a loopback or
//! link-local address); otherwise, with `internal_networks` configured,
//! `internal`, `outbound`, `inbound` or `external` by which ends are
//! inside them. Left out when neither says (Packetbeat would write
//! `unknown`).

use std::net::IpAddr;

/// Configured internal networks, and this node's own addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Networks {
    ranges: Vec<Range>,
    /// The node's addresses (live capture on its own interfaces).
    pub local: Vec<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Range {
    Cidr(IpAddr, u8),
    /// Beats' named ranges.
    Private,
    Public,
    Loopback,
    LinkLocalUnicast,
    Multicast,
    Unspecified,
}

impl Networks {
    /// Parses CIDRs, bare addresses and Beats' named ranges (`private`,
    /// `public`, `loopback`, `link_local_unicast`, `multicast`,
    /// `unspecified`).
    pub fn parse(names: &[String]) -> Result<Networks, String> {
        let ranges = names
            .iter()
            .map(|name| {
                Ok(match name.as_str() {
                    "private" => Range::Private,
                    "public" => Range::Public,
                    "loopback" => Range::Loopback,
                    "link_local_unicast" => Range::LinkLocalUnicast,
                    "multicast" => Range::Multicast,
                    "unspecified" => Range::Unspecified,
                    cidr => {
                        let (address, prefix) = cidr.split_once('/').unwrap_or((cidr, ""));
                        let address: IpAddr = address.parse().map_err(|_| {
                            format!(
                                "internal_networks: {name:?} is no CIDR, address or named range"
                            )
                        })?;
                        let max = if address.is_ipv4() { 32 } else { 128 };
                        let prefix =
                            if prefix.is_empty() {
                                max
                            } else {
                                prefix.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(
                                    || format!("internal_networks: bad prefix in {name:?}"),
                                )?
                            };
                        Range::Cidr(address, prefix)
                    }
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Networks {
            ranges,
            local: Vec::new(),
        })
    }

    /// Whether nothing can give a direction.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty() && self.local.is_empty()
    }

    fn internal(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|range| range.contains(ip))
    }

    /// The direction of a packet from `src` to `dst`, when one is known.
    pub fn direction(&self, src: IpAddr, dst: IpAddr) -> Option<&'static str> {
        let own = |ip: IpAddr| ip.is_loopback() || link_local(ip) || self.local.contains(&ip);
        if own(dst) {
            return Some("ingress");
        }
        if own(src) {
            return Some("egress");
        }
        if self.ranges.is_empty() {
            return None;
        }
        Some(match (self.internal(src), self.internal(dst)) {
            (true, true) => "internal",
            (true, false) => "outbound",
            (false, true) => "inbound",
            (false, false) => "external",
        })
    }
}

fn link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private(),
        // Unique local addresses (RFC 4193).
        IpAddr::V6(v6) => v6.segments()[0] & 0xfe00 == 0xfc00,
    }
}

impl Range {
    fn contains(&self, ip: IpAddr) -> bool {
        match *self {
            Range::Cidr(network, prefix) => match (network, ip) {
                (IpAddr::V4(net), IpAddr::V4(ip)) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                    net.to_bits() & mask == ip.to_bits() & mask
                }
                (IpAddr::V6(net), IpAddr::V6(ip)) => {
                    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                    net.to_bits() & mask == ip.to_bits() & mask
                }
                _ => false,
            },
            Range::Private => private(ip),
            Range::Public => {
                !(private(ip)
                    || ip.is_loopback()
                    || link_local(ip)
                    || ip.is_multicast()
                    || ip.is_unspecified())
            }
            Range::Loopback => ip.is_loopback(),
            Range::LinkLocalUnicast => link_local(ip),
            Range::Multicast => ip.is_multicast(),
            Range::Unspecified => ip.is_unspecified(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn perimeter_and_host_directions() {
        let networks = Networks::parse(&["private".into(), "203.0.113.0/24".into()]).unwrap();
        let d = |a, b| networks.direction(ip(a), ip(b));
        assert_eq!(d("10.0.0.1", "192.168.1.1"), Some("internal"));
        assert_eq!(d("10.0.0.1", "8.8.8.8"), Some("outbound"));
        assert_eq!(d("8.8.8.8", "203.0.113.9"), Some("inbound"));
        assert_eq!(d("8.8.8.8", "1.1.1.1"), Some("external"));
        assert_eq!(d("fd00::1", "2001:db8::1"), Some("outbound"));
        assert_eq!(d("8.8.8.8", "127.0.0.1"), Some("ingress"));
        let mut host = Networks::parse(&[]).unwrap();
        assert!(host.is_empty());
        assert_eq!(host.direction(ip("10.0.0.1"), ip("10.0.0.2")), None);
        host.local.push(ip("10.0.0.2"));
        assert_eq!(
            host.direction(ip("10.0.0.1"), ip("10.0.0.2")),
            Some("ingress")
        );
        assert_eq!(
            host.direction(ip("10.0.0.2"), ip("10.0.0.1")),
            Some("egress")
        );
        for bad in ["10.0.0.0/33", "intranet", "::/129"] {
            assert!(Networks::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
