//! Community ID flow hashing, version 1 (corelight/community-id-spec), as in
//! Packetbeat's `network.community_id`.

use std::net::IpAddr;

use base64::Engine;
use sha1::{Digest, Sha1};

/// A transport flow: addresses, ports and IP protocol number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
}

impl FlowKey {
    /// The other direction of the flow.
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            protocol: self.protocol,
        }
    }
}

/// `1:<base64 of SHA-1>`; 28 base64 characters after the prefix.
pub const LEN: usize = 30;

/// Computes the version 1 Community ID of `flow` with seed 0.
pub fn community_id(flow: &FlowKey) -> [u8; LEN] {
    let (a, b) = ((flow.src, flow.src_port), (flow.dst, flow.dst_port));
    // The spec orders endpoints so both directions hash the same.
    let ((ip1, port1), (ip2, port2)) =
        if octets(&a.0) < octets(&b.0) || (octets(&a.0) == octets(&b.0) && a.1 <= b.1) {
            (a, b)
        } else {
            (b, a)
        };
    let mut hasher = Sha1::new();
    hasher.update(0u16.to_be_bytes());
    hasher.update(octets(&ip1).as_slice());
    hasher.update(octets(&ip2).as_slice());
    hasher.update([flow.protocol, 0]);
    hasher.update(port1.to_be_bytes());
    hasher.update(port2.to_be_bytes());
    let digest = hasher.finalize();
    let mut out = [0u8; LEN];
    out[..2].copy_from_slice(b"1:");
    base64::engine::general_purpose::STANDARD
        .encode_slice(digest, &mut out[2..])
        .expect("28 bytes hold the base64 of a SHA-1");
    out
}

/// Network-order address bytes: 4 for IPv4, 16 for IPv6.
fn octets(ip: &IpAddr) -> Octets {
    match ip {
        IpAddr::V4(v4) => Octets::V4(v4.octets()),
        IpAddr::V6(v6) => Octets::V6(v6.octets()),
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Octets {
    V4([u8; 4]),
    V6([u8; 16]),
}

impl Octets {
    fn as_slice(&self) -> &[u8] {
        match self {
            Octets::V4(bytes) => bytes,
            Octets::V6(bytes) => bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(src: &str, sport: u16, dst: &str, dport: u16, protocol: u8) -> FlowKey {
        FlowKey {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            src_port: sport,
            dst_port: dport,
            protocol,
        }
    }

    #[test]
    fn matches_packetbeat_goldens() {
        let udp = flow("10.0.2.20", 5060, "10.0.2.15", 5060, 17);
        assert_eq!(&community_id(&udp), b"1:xDRQZvk3ErEhBDslXv1c6EKI804=");
        let reverse = flow("10.0.2.15", 5060, "10.0.2.20", 5060, 17);
        assert_eq!(community_id(&reverse), community_id(&udp));
        let tcp = flow("10.33.6.100", 64802, "10.33.6.101", 5060, 6);
        assert_eq!(&community_id(&tcp), b"1:nWlU53kb2GqnNe1VDWV69Wz6OJc=");
    }
}
