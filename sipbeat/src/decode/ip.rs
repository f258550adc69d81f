//! IPv4 and IPv6 headers: addresses, the upper-layer protocol and its bytes.
//!
//! IPv4 payloads are cut to the header's total length (dropping Ethernet
//! padding); IPv6 extension headers are walked to the upper layer. Fragments
//! are described ([`Fragment`]), not reassembled: reassembly holds state and
//! lives in [`crate::reassemble::defrag`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sipbeat_common::wire::{IPV6_HEADER_LEN, MAX_IPV6_EXTENSIONS, ipv6_next};

use super::DecodeError;
use super::link::Network;

/// An IP datagram's addressing and upper-layer payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The upper-layer protocol number (after IPv6 extension headers).
    pub protocol: u8,
    pub payload: &'a [u8],
    /// Set when this datagram is one fragment of a larger one.
    pub fragment: Option<Fragment>,
}

/// Where a fragment's payload belongs in its original datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// IPv4 identification (16 bits) or IPv6 fragment identification.
    pub id: u32,
    /// Byte offset of this payload in the original payload.
    pub offset: usize,
    /// More fragments follow.
    pub more: bool,
}

/// IPv4 fields as ranges, from the offsets in `sipbeat_common::wire::ipv4`.
mod ipv4_field {
    use core::ops::Range;
    use sipbeat_common::wire::ipv4 as at;

    const fn field(start: usize, len: usize) -> Range<usize> {
        start..start + len
    }
    pub const TOTAL_LEN: Range<usize> = field(at::TOTAL_LEN, 2);
    pub const IDENTIFICATION: Range<usize> = field(at::IDENTIFICATION, 2);
    pub const FLAGS_FRAGMENT: Range<usize> = field(at::FLAGS_FRAGMENT, 2);
    pub const PROTOCOL: usize = at::PROTOCOL;
    pub const SRC: Range<usize> = field(at::SRC, 4);
    pub const DST: Range<usize> = field(at::DST, 4);
    pub const MIN_HEADER_LEN: usize = sipbeat_common::wire::IPV4_MIN_HEADER_LEN;
    pub use at::{MORE_FRAGMENTS, OFFSET_MASK};
}

/// Decodes the IP header of `network`.
pub fn decode(network: Network<'_>) -> Result<Datagram<'_>, DecodeError> {
    match network {
        Network::Ipv4(bytes) => ipv4(bytes),
        Network::Ipv6(bytes) => ipv6(bytes),
    }
}

fn u16_at(bytes: &[u8], range: core::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([bytes[range.start], bytes[range.start + 1]])
}

/// IPv4: checks version, header and total length; reports fragments.
pub fn ipv4(bytes: &[u8]) -> Result<Datagram<'_>, DecodeError> {
    use ipv4_field as f;
    if bytes.len() < f::MIN_HEADER_LEN || bytes[0] >> 4 != 4 {
        return Err(DecodeError::Ipv4Malformed);
    }
    let header_len = usize::from(bytes[0] & 0x0f) * 4;
    let total_len = usize::from(u16_at(bytes, f::TOTAL_LEN));
    // Segmentation offload can leave total length 0 in captures of sent packets.
    let total_len = if total_len == 0 {
        bytes.len()
    } else {
        total_len
    };
    if header_len < f::MIN_HEADER_LEN || total_len < header_len || bytes.len() < header_len {
        return Err(DecodeError::Ipv4Malformed);
    }
    let flags_fragment = u16_at(bytes, f::FLAGS_FRAGMENT);
    let more = flags_fragment & f::MORE_FRAGMENTS != 0;
    let offset = usize::from(flags_fragment & f::OFFSET_MASK) * 8;
    let fragment = (more || offset != 0).then(|| Fragment {
        id: u32::from(u16_at(bytes, f::IDENTIFICATION)),
        offset,
        more,
    });
    let src: [u8; 4] = bytes[f::SRC].try_into().expect("4 bytes");
    let dst: [u8; 4] = bytes[f::DST].try_into().expect("4 bytes");
    // A capture may hold fewer bytes than the total length (snap length);
    // the transport layer notices when that matters.
    let end = total_len.min(bytes.len());
    Ok(Datagram {
        src: IpAddr::V4(Ipv4Addr::from(src)),
        dst: IpAddr::V4(Ipv4Addr::from(dst)),
        protocol: bytes[f::PROTOCOL],
        payload: &bytes[header_len..end],
        fragment,
    })
}

/// IPv6: walks extension headers; reports fragments.
pub fn ipv6(bytes: &[u8]) -> Result<Datagram<'_>, DecodeError> {
    if bytes.len() < IPV6_HEADER_LEN || bytes[0] >> 4 != 6 {
        return Err(DecodeError::Ipv6Malformed);
    }
    let payload_len = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
    // Payload length 0 means a jumbogram (or offload): trust the capture.
    let end = if payload_len == 0 {
        bytes.len()
    } else {
        (IPV6_HEADER_LEN + payload_len).min(bytes.len())
    };
    let src: [u8; 16] = bytes[8..24].try_into().expect("16 bytes");
    let dst: [u8; 16] = bytes[24..40].try_into().expect("16 bytes");
    let mut next = bytes[6];
    let mut offset = IPV6_HEADER_LEN;
    let mut fragment = None;
    for _ in 0..MAX_IPV6_EXTENSIONS {
        let header_len = match next {
            ipv6_next::HOP_BY_HOP
            | ipv6_next::ROUTING
            | ipv6_next::DEST_OPTIONS
            | ipv6_next::MOBILITY
            | ipv6_next::AUTH => {
                let units = *bytes.get(offset + 1).ok_or(DecodeError::Ipv6Malformed)?;
                ipv6_next::extension_len(next, units)
            }
            ipv6_next::FRAGMENT => {
                let header: [u8; 8] = bytes
                    .get(offset..offset + 8)
                    .and_then(|h| h.try_into().ok())
                    .ok_or(DecodeError::Ipv6Malformed)?;
                let offset_flags = u16::from_be_bytes([header[2], header[3]]);
                let (offset, more) = (usize::from(offset_flags >> 3) * 8, offset_flags & 1 != 0);
                // An atomic fragment (offset 0, no more) is a whole datagram.
                if offset != 0 || more {
                    fragment = Some(Fragment {
                        id: u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
                        offset,
                        more,
                    });
                }
                8
            }
            _ => break,
        };
        next = *bytes.get(offset).ok_or(DecodeError::Ipv6Malformed)?;
        offset += header_len;
    }
    if offset > end {
        return Err(DecodeError::Ipv6Malformed);
    }
    Ok(Datagram {
        src: IpAddr::V6(Ipv6Addr::from(src)),
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        protocol: next,
        payload: &bytes[offset..end],
        fragment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::testing::ipv4_udp;

    #[test]
    fn ipv4_cuts_ethernet_padding() {
        let mut packet = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, b"hi");
        packet.extend_from_slice(&[0; 6]);
        let datagram = ipv4(&packet).unwrap();
        assert_eq!(datagram.protocol, 17);
        assert_eq!(datagram.payload.len(), 10);
        assert_eq!(datagram.src, "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ipv4_fragments_are_described() {
        let mut packet = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, b"hi");
        assert_eq!(ipv4(&packet).unwrap().fragment, None);
        packet[6] = 0x20; // more fragments
        let first = Fragment {
            id: 1,
            offset: 0,
            more: true,
        };
        assert_eq!(ipv4(&packet).unwrap().fragment, Some(first));
        packet[6] = 0x00;
        packet[7] = 0x10; // offset 16 * 8
        let last = Fragment {
            id: 1,
            offset: 128,
            more: false,
        };
        assert_eq!(ipv4(&packet).unwrap().fragment, Some(last));
    }

    #[test]
    fn ipv4_bad_header_lengths() {
        let mut packet = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, b"hi");
        packet[0] = 0x44;
        assert_eq!(ipv4(&packet), Err(DecodeError::Ipv4Malformed));
        assert_eq!(ipv4(&packet[..12]), Err(DecodeError::Ipv4Malformed));
    }

    fn ipv6_packet(next: u8, extension: &[u8], payload: &[u8]) -> Vec<u8> {
        let len = extension.len() + payload.len();
        let mut p = vec![0x60, 0, 0, 0, (len >> 8) as u8, len as u8, next, 64];
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        p.extend_from_slice(&[0; 11]);
        p.push(1);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        p.extend_from_slice(&[0; 11]);
        p.push(2);
        p.extend_from_slice(extension);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn ipv6_walks_extension_headers() {
        // Hop-by-hop (8 bytes) then UDP.
        let ext = [17, 0, 0, 0, 0, 0, 0, 0];
        let packet = ipv6_packet(0, &ext, b"udp!");
        let datagram = ipv6(&packet).unwrap();
        assert_eq!(datagram.protocol, 17);
        assert_eq!(datagram.payload, b"udp!");
        assert_eq!(datagram.dst, "2001:db8::2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ipv6_fragment_header_is_described() {
        let ext = [17, 0, 0, 1, 0, 0, 0, 7];
        let packet = ipv6_packet(44, &ext, b"x");
        let datagram = ipv6(&packet).unwrap();
        assert_eq!(datagram.protocol, 17);
        assert_eq!(
            datagram.fragment,
            Some(Fragment {
                id: 7,
                offset: 0,
                more: true
            })
        );
        let atomic = [17, 0, 0, 0, 0, 0, 0, 7];
        assert_eq!(
            ipv6(&ipv6_packet(44, &atomic, b"x")).unwrap().fragment,
            None
        );
    }

    #[test]
    fn ipv6_extension_past_the_end_is_malformed() {
        let ext = [17, 9];
        assert_eq!(
            ipv6(&ipv6_packet(60, &ext, b"")),
            Err(DecodeError::Ipv6Malformed)
        );
    }
}
