//! GRE (RFC 2784/2890) and what it carries for monitoring: IP, transparent
//! Ethernet bridging, ERSPAN type II and III mirrors, PPP (as in PPTP).

use super::DecodeError;
use super::link::Network;

/// What a GRE packet carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inner<'a> {
    Network(Network<'a>),
    /// An Ethernet frame (bridging, ERSPAN).
    Ethernet(&'a [u8]),
}

use gre::protocol;
use sipbeat_common::wire::{erspan, gre, ppp};

/// Strips the GRE header (and an ERSPAN or PPP header behind it).
pub fn decode(bytes: &[u8]) -> Result<Inner<'_>, DecodeError> {
    let [flags, version, hi, lo, ..] = *bytes else {
        return Err(DecodeError::TunnelMalformed);
    };
    let protocol = u16::from_be_bytes([hi, lo]);
    // Version 1 is enhanced GRE (PPTP): key always present, ack optional.
    let offset = gre::header_len(flags, version);
    let payload = bytes.get(offset..).ok_or(DecodeError::TunnelMalformed)?;
    match protocol {
        protocol::IPV4 => Ok(Inner::Network(Network::Ipv4(payload))),
        protocol::IPV6 => Ok(Inner::Network(Network::Ipv6(payload))),
        protocol::TRANSPARENT_ETHERNET => Ok(Inner::Ethernet(payload)),
        // ERSPAN II: 8-byte header. Type I (no sequence number) has none.
        protocol::ERSPAN_II if flags & gre::SEQUENCE_PRESENT != 0 => Ok(Inner::Ethernet(
            payload
                .get(erspan::TYPE_II_LEN..)
                .ok_or(DecodeError::TunnelMalformed)?,
        )),
        protocol::ERSPAN_II => Ok(Inner::Ethernet(payload)),
        protocol::ERSPAN_III => {
            // 12-byte header, plus an 8-byte platform sub-header when O is set.
            let o_flag = payload
                .get(erspan::TYPE_III_FLAGS_BYTE)
                .ok_or(DecodeError::TunnelMalformed)?
                & erspan::TYPE_III_O_FLAG
                != 0;
            let len = if o_flag {
                erspan::TYPE_III_PLATFORM_LEN
            } else {
                erspan::TYPE_III_LEN
            };
            Ok(Inner::Ethernet(
                payload.get(len..).ok_or(DecodeError::TunnelMalformed)?,
            ))
        }
        protocol::PPP => ppp(payload),
        _ => Err(DecodeError::OtherTransport),
    }
}

/// PPP in HDLC-like framing (`ff 03`, optional) then a 1- or 2-byte protocol.
fn ppp(bytes: &[u8]) -> Result<Inner<'_>, DecodeError> {
    let bytes = bytes.strip_prefix(&ppp::HDLC_PREFIX).unwrap_or(bytes);
    let (protocol, rest) = match bytes {
        // Protocol-field compression: odd first byte means one byte.
        [p, rest @ ..] if p & 1 == 1 => (u16::from(*p), rest),
        [hi, lo, rest @ ..] => (u16::from_be_bytes([*hi, *lo]), rest),
        _ => return Err(DecodeError::TunnelMalformed),
    };
    match protocol {
        ppp::IPV4 => Ok(Inner::Network(Network::Ipv4(rest))),
        ppp::IPV6 => Ok(Inner::Network(Network::Ipv6(rest))),
        _ => Err(DecodeError::OtherTransport),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_keyed_gre() {
        assert_eq!(
            decode(&[0, 0, 0x08, 0x00, 0x45]),
            Ok(Inner::Network(Network::Ipv4(&[0x45])))
        );
        let keyed = [gre::KEY_PRESENT, 0, 0x86, 0xdd, 0, 0, 0, 7, 0x60];
        assert_eq!(decode(&keyed), Ok(Inner::Network(Network::Ipv6(&[0x60]))));
    }

    #[test]
    fn erspan_two_and_three() {
        let mut two = vec![gre::SEQUENCE_PRESENT, 0, 0x88, 0xbe, 0, 0, 0, 1];
        two.extend_from_slice(&[0x10, 0, 0, 1, 0, 0, 0, 0]);
        two.push(0xee);
        assert_eq!(decode(&two), Ok(Inner::Ethernet(&[0xee])));
        let mut three = vec![gre::SEQUENCE_PRESENT, 0, 0x22, 0xeb, 0, 0, 0, 1];
        three.extend_from_slice(&[0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        three.push(0xee);
        assert_eq!(decode(&three), Ok(Inner::Ethernet(&[0xee])));
    }

    #[test]
    fn ppp_in_gre() {
        let packet = [
            0x30, 0x01, 0x88, 0x0b, 0, 4, 0, 0, 0, 0, 0, 1, 0xff, 0x03, 0x00, 0x21, 0x45,
        ];
        assert_eq!(decode(&packet), Ok(Inner::Network(Network::Ipv4(&[0x45]))));
        assert_eq!(decode(&[0, 0]), Err(DecodeError::TunnelMalformed));
    }
}
