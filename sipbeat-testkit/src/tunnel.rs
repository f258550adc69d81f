//! Wrapping captured frames in tunnels, for tests of the tunnel decoders
//! and the kernel filter: VXLAN, Geneve, GRE (IP, Ethernet bridging,
//! ERSPAN II and III), IP-in-IP and VLAN/QinQ tags, each around an
//! Ethernet frame or an IP packet.
//! Outer addresses are from 198.51.100.0/24 and 2001:db8::/32
//! (documentation ranges); checksums are left zero.

const OUTER_MAC: [u8; 12] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];

/// An Ethernet frame of `ethertype` around `payload`.
pub fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = OUTER_MAC.to_vec();
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// An outer IPv4 header of `protocol` around `payload`.
pub fn ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut packet = vec![0x45, 0];
    packet.extend_from_slice(&total.to_be_bytes());
    packet.extend_from_slice(&[0, 7, 0x40, 0, 64, protocol, 0, 0]);
    packet.extend_from_slice(&[198, 51, 100, 1, 198, 51, 100, 2]);
    packet.extend_from_slice(payload);
    packet
}

/// An outer IPv6 header with next header `protocol` around `payload`.
pub fn ipv6(protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x60, 0, 0, 0];
    packet.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    packet.extend_from_slice(&[protocol, 64]);
    for last in [1u8, 2] {
        packet.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        packet.extend_from_slice(&[0; 11]);
        packet.push(last);
    }
    packet.extend_from_slice(payload);
    packet
}

/// A UDP header from port 49152 to `port` around `payload`.
pub fn udp(port: u16, payload: &[u8]) -> Vec<u8> {
    let mut datagram = 49152u16.to_be_bytes().to_vec();
    datagram.extend_from_slice(&port.to_be_bytes());
    datagram.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    datagram.extend_from_slice(&[0, 0]);
    datagram.extend_from_slice(payload);
    datagram
}

/// Ethernet/IPv4/UDP to `port`/VXLAN (VNI 42) around the Ethernet `frame`.
pub fn vxlan(port: u16, frame: &[u8]) -> Vec<u8> {
    let mut header = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    header.extend_from_slice(frame);
    ethernet(0x0800, &ipv4(17, &udp(port, &header)))
}

/// Ethernet/IPv6/UDP to `port`/Geneve with one 8-byte option around the
/// Ethernet `frame`.
pub fn geneve(port: u16, frame: &[u8]) -> Vec<u8> {
    let mut header = vec![2, 0, 0x65, 0x58, 0, 0, 42, 0];
    header.extend_from_slice(&[0x01, 0x02, 0x03, 0x01, 0, 0, 0, 0]);
    header.extend_from_slice(frame);
    ethernet(0x86dd, &ipv6(17, &udp(port, &header)))
}

/// Ethernet/IPv4/GRE with key and sequence number, of `protocol`, with
/// `inner_header` between GRE and `payload`.
fn gre(protocol: u16, inner_header: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut header = vec![0x30, 0];
    header.extend_from_slice(&protocol.to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 1]);
    header.extend_from_slice(inner_header);
    header.extend_from_slice(payload);
    ethernet(0x0800, &ipv4(47, &header))
}

/// GRE transparent Ethernet bridging around the Ethernet `frame`.
pub fn gre_ethernet(frame: &[u8]) -> Vec<u8> {
    gre(0x6558, &[], frame)
}

/// GRE carrying the IP `packet` directly (IPv4 or IPv6 by its version).
pub fn gre_ip(packet: &[u8]) -> Vec<u8> {
    let protocol = if packet[0] >> 4 == 6 { 0x86dd } else { 0x0800 };
    gre(protocol, &[], packet)
}

/// ERSPAN type II (session 1) around the Ethernet `frame`.
pub fn erspan2(frame: &[u8]) -> Vec<u8> {
    gre(0x88be, &[0x10, 0, 0, 1, 0, 0, 0, 0], frame)
}

/// ERSPAN type III with the platform sub-header around the Ethernet `frame`.
pub fn erspan3(frame: &[u8]) -> Vec<u8> {
    let mut header = vec![0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x01];
    header.extend_from_slice(&[0; 8]);
    gre(0x22eb, &header, frame)
}

/// The IP `packet` inside an outer IPv4 (`outer_v6` false) or IPv6 header:
/// 4in4, 6in4, 4in6 or 6in6 by the inner packet's version.
pub fn ip_in_ip(packet: &[u8], outer_v6: bool) -> Vec<u8> {
    let protocol = if packet[0] >> 4 == 6 { 41 } else { 4 };
    if outer_v6 {
        ethernet(0x86dd, &ipv6(protocol, packet))
    } else {
        ethernet(0x0800, &ipv4(protocol, packet))
    }
}

/// The Ethernet `frame` with an 802.1ad tag and an 802.1Q tag added.
pub fn qinq(frame: &[u8]) -> Vec<u8> {
    let mut tagged = frame[..12].to_vec();
    tagged.extend_from_slice(&[0x88, 0xa8, 0, 100, 0x81, 0x00, 0, 200]);
    tagged.extend_from_slice(&frame[12..]);
    tagged
}

/// The IP packet inside an untagged Ethernet `frame`, if it is one.
pub fn ip_of(frame: &[u8]) -> Option<&[u8]> {
    match frame.get(12..14)? {
        [0x08, 0x00] | [0x86, 0xdd] => frame.get(14..),
        _ => None,
    }
}
