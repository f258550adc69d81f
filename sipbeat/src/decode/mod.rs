//! From link-layer frame to transport payload, one layer per file.
//!
//! Each layer is a function over borrowed bytes that checks lengths before it
//! reads and returns the next layer's bytes; nothing here copies or allocates.
//! [`decode`] chains them: link ([`link`]) → IP ([`ip`]) → UDP ([`udp`]).
//! Stateful work — IP reassembly and TCP streams — lives outside, so the wire
//! views stay pure functions that a fuzzer can call on any input.

pub mod ip;
pub mod link;
pub mod udp;

use std::net::IpAddr;

use crate::capture::LinkType;

crate::reasons! {
    /// Why a frame did not yield a transport payload.
    pub enum DecodeError {
        /// Not IPv4 or IPv6 at the network layer (ARP, LLDP, ...).
        NotIp => "not_ip",
        /// An IP protocol sipbeat does not carry SIP over (ICMP, ESP, ...).
        OtherTransport => "other_transport",
        /// An IP fragment; reassembly is not enabled for this input.
        Fragment => "ip_fragment",
        /// SIP over TCP is not decoded by this pipeline.
        Tcp => "tcp",
        /// Frame shorter than its link header.
        LinkTruncated => "link_truncated",
        /// IPv4 header too short, wrong version or length fields out of range.
        Ipv4Malformed => "ipv4_malformed",
        /// IPv6 header or extension header chain cut short.
        Ipv6Malformed => "ipv6_malformed",
        /// UDP header cut short or its length field inconsistent.
        UdpMalformed => "udp_malformed",
        /// The capture kept fewer bytes than the UDP datagram had (snap length).
        UdpTruncated => "udp_truncated",
    }
}

impl DecodeError {
    /// Whether the frame was broken, as opposed to simply not being SIP-bearing traffic.
    pub const fn is_malformed(self) -> bool {
        !matches!(
            self,
            DecodeError::NotIp | DecodeError::OtherTransport | DecodeError::Tcp
        )
    }
}

/// IP protocol numbers this layer looks at.
pub mod protocol {
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
}

/// A decoded packet: addresses plus what the transport carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub transport: Transport<'a>,
}

/// The transport layer of a [`Packet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport<'a> {
    Udp(udp::Datagram<'a>),
}

/// Decodes one frame down to its transport payload.
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Packet<'_>, DecodeError> {
    let network = link::decode(link, frame)?;
    let datagram = ip::decode(network)?;
    match datagram.protocol {
        protocol::UDP => {
            let udp = udp::decode(datagram.payload)?;
            Ok(Packet {
                src: datagram.src,
                dst: datagram.dst,
                transport: Transport::Udp(udp),
            })
        }
        protocol::TCP => Err(DecodeError::Tcp),
        _ => Err(DecodeError::OtherTransport),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Frame builders for decoder tests.

    /// An Ethernet + IPv4 + UDP frame around `payload`.
    pub fn udp4_frame(
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&ipv4_udp(src, dst, sport, dport, payload));
        frame
    }

    /// An IPv4 + UDP packet around `payload`.
    pub fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let total = 20 + 8 + payload.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0,
            0,
            64,
            17,
            0,
            0,
        ];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        let udp_len = 8 + payload.len();
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&(udp_len as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        p
    }
}
