//! Link layers: Ethernet with 802.1Q/802.1ad tags, Linux SLL and SLL2, BSD
//! null/loop, raw IP. Yields the network-layer bytes and which IP version
//! they claim to be; leaves IP meaning to [`super::ip`].

use super::DecodeError;
use crate::capture::LinkType;

/// The network-layer bytes of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network<'a> {
    Ipv4(&'a [u8]),
    Ipv6(&'a [u8]),
}

use sipbeat_common::wire::{ETHERNET_LEN, MAX_VLAN_TAGS, VLAN_ID_MASK, VLAN_TAG_LEN, ethertype};
const SLL_LEN: usize = 16;
const SLL2_LEN: usize = 20;
const NULL_LEN: usize = 4;

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

/// Strips the link header of a frame.
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Network<'_>, DecodeError> {
    match link {
        LinkType::Ethernet => ethernet(frame),
        // SLL: the protocol is the last field; SLL2: the first.
        LinkType::LinuxSll => cooked(frame, 14, SLL_LEN),
        LinkType::LinuxSll2 => cooked(frame, 0, SLL2_LEN),
        LinkType::RawIp => raw_ip(frame),
        LinkType::Ipv4 => Ok(Network::Ipv4(frame)),
        LinkType::Ipv6 => Ok(Network::Ipv6(frame)),
        LinkType::Null | LinkType::Loop => {
            let family: [u8; 4] = frame
                .get(..NULL_LEN)
                .and_then(|b| b.try_into().ok())
                .ok_or(DecodeError::LinkTruncated)?;
            // DLT_NULL stores the family in the capturing host's byte order,
            // which the file does not record; either order is unambiguous.
            let family = match link {
                LinkType::Loop => u32::from_be_bytes(family),
                _ => u32::from_le_bytes(family).min(u32::from_be_bytes(family)),
            };
            let rest = &frame[NULL_LEN..];
            match family {
                2 => Ok(Network::Ipv4(rest)),
                // AF_INET6 differs across BSDs, Darwin and Linux.
                10 | 24 | 28 | 30 => Ok(Network::Ipv6(rest)),
                _ => Err(DecodeError::NotIp),
            }
        }
    }
}

/// Linux cooked capture: an EtherType at `protocol_at` in a `header_len` header.
fn cooked(frame: &[u8], protocol_at: usize, header_len: usize) -> Result<Network<'_>, DecodeError> {
    match (be16(frame, protocol_at), frame.get(header_len..)) {
        (Some(protocol), Some(payload)) => by_ethertype(protocol, payload),
        _ => Err(DecodeError::LinkTruncated),
    }
}

/// Ethernet II with up to `MAX_VLAN_TAGS` (four) VLAN tags: 802.1Q, QinQ.
pub fn ethernet(frame: &[u8]) -> Result<Network<'_>, DecodeError> {
    let mut next_type = be16(frame, 12).ok_or(DecodeError::LinkTruncated)?;
    let mut offset = ETHERNET_LEN;
    for _ in 0..MAX_VLAN_TAGS {
        if !ethertype::is_vlan_tag(next_type) {
            break;
        }
        next_type = be16(frame, offset + 2).ok_or(DecodeError::LinkTruncated)?;
        offset += VLAN_TAG_LEN;
    }
    by_ethertype(
        next_type,
        frame.get(offset..).ok_or(DecodeError::LinkTruncated)?,
    )
}

/// The VLAN id of an Ethernet frame's outermost tag, if it has one
/// (`observer.ingress.vlan.id`).
#[inline]
pub fn outer_vlan(link: LinkType, frame: &[u8]) -> Option<u16> {
    if link != LinkType::Ethernet || !ethertype::is_vlan_tag(be16(frame, 12)?) {
        return None;
    }
    Some(be16(frame, ETHERNET_LEN)? & VLAN_ID_MASK)
}

fn by_ethertype(ethertype: u16, payload: &[u8]) -> Result<Network<'_>, DecodeError> {
    match ethertype {
        ethertype::IPV4 => Ok(Network::Ipv4(payload)),
        ethertype::IPV6 => Ok(Network::Ipv6(payload)),
        _ => Err(DecodeError::NotIp),
    }
}

/// Raw IP: the first nibble says which version.
pub fn raw_ip(packet: &[u8]) -> Result<Network<'_>, DecodeError> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => Ok(Network::Ipv4(packet)),
        Some(6) => Ok(Network::Ipv6(packet)),
        Some(_) => Err(DecodeError::NotIp),
        None => Err(DecodeError::LinkTruncated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_with_qinq_reaches_ipv4() {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0xc8, 0x08, 0x00]);
        frame.extend_from_slice(&[0x45, 0xaa]);
        assert_eq!(ethernet(&frame), Ok(Network::Ipv4(&[0x45, 0xaa])));
    }

    #[test]
    fn truncated_vlan_tag_is_an_error() {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x81, 0x00, 0x00]);
        assert_eq!(ethernet(&frame), Err(DecodeError::LinkTruncated));
    }

    #[test]
    fn arp_is_not_ip() {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x06, 0, 1]);
        assert_eq!(ethernet(&frame), Err(DecodeError::NotIp));
    }

    #[test]
    fn linux_sll_and_sll2() {
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x86, 0xdd, 0x60]);
        assert_eq!(decode(LinkType::LinuxSll, &sll), Ok(Network::Ipv6(&[0x60])));
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.push(0x45);
        assert_eq!(
            decode(LinkType::LinuxSll2, &sll2),
            Ok(Network::Ipv4(&[0x45]))
        );
        assert_eq!(
            decode(LinkType::LinuxSll, &sll[..10]),
            Err(DecodeError::LinkTruncated)
        );
    }

    #[test]
    fn null_loopback_in_either_byte_order() {
        assert_eq!(
            decode(LinkType::Null, &[2, 0, 0, 0, 0x45]),
            Ok(Network::Ipv4(&[0x45]))
        );
        assert_eq!(
            decode(LinkType::Null, &[0, 0, 0, 2, 0x45]),
            Ok(Network::Ipv4(&[0x45]))
        );
        assert_eq!(
            decode(LinkType::Null, &[30, 0, 0, 0, 0x60]),
            Ok(Network::Ipv6(&[0x60]))
        );
        assert_eq!(
            decode(LinkType::Loop, &[0, 0, 0, 24, 0x60]),
            Ok(Network::Ipv6(&[0x60]))
        );
    }

    #[test]
    fn raw_ip_by_version_nibble() {
        assert_eq!(raw_ip(&[0x60, 0]), Ok(Network::Ipv6(&[0x60, 0])));
        assert_eq!(raw_ip(&[0x10]), Err(DecodeError::NotIp));
        assert_eq!(raw_ip(&[]), Err(DecodeError::LinkTruncated));
    }
}
