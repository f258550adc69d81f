//! UDP header: ports and the datagram payload, bounded by the length field.

use super::DecodeError;

/// A UDP datagram's ports and payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

const HEADER_LEN: usize = 8;

/// Decodes a UDP header; the payload ends where the length field says.
pub fn decode(bytes: &[u8]) -> Result<Datagram<'_>, DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::UdpMalformed);
    }
    let src_port = u16::from_be_bytes([bytes[0], bytes[1]]);
    let dst_port = u16::from_be_bytes([bytes[2], bytes[3]]);
    let length = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
    let end = match length {
        // Length 0: a jumbogram over IPv6 or checksum offload; trust the IP layer.
        0 => bytes.len(),
        1..HEADER_LEN => return Err(DecodeError::UdpMalformed),
        _ if length > bytes.len() => return Err(DecodeError::UdpTruncated),
        _ => length,
    };
    Ok(Datagram {
        src_port,
        dst_port,
        payload: &bytes[HEADER_LEN..end],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_bounded_by_length_field() {
        let bytes = [0x13, 0xc4, 0x13, 0xc5, 0, 10, 0, 0, b'o', b'k', 0, 0];
        let datagram = decode(&bytes).unwrap();
        assert_eq!((datagram.src_port, datagram.dst_port), (5060, 5061));
        assert_eq!(datagram.payload, b"ok");
    }

    #[test]
    fn short_capture_and_bad_lengths() {
        assert_eq!(
            decode(&[0, 1, 0, 2, 0, 20, 0, 0, 1]),
            Err(DecodeError::UdpTruncated)
        );
        assert_eq!(
            decode(&[0, 1, 0, 2, 0, 4, 0, 0]),
            Err(DecodeError::UdpMalformed)
        );
        assert_eq!(decode(&[0, 1, 0]), Err(DecodeError::UdpMalformed));
    }
}
