//! TCP header: ports, sequence number, the flags reassembly needs, payload.
//! Stateless; streams are put together in [`crate::reassemble::tcp`].

use super::DecodeError;

/// TCP flag bits (RFC 9293).
pub mod flag {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
}

/// One TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub flags: u8,
    pub payload: &'a [u8],
}

impl Segment<'_> {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

const MIN_HEADER_LEN: usize = 20;

/// Decodes a TCP header; options are skipped.
pub fn decode(bytes: &[u8]) -> Result<Segment<'_>, DecodeError> {
    if bytes.len() < MIN_HEADER_LEN {
        return Err(DecodeError::TcpMalformed);
    }
    let header_len = usize::from(bytes[12] >> 4) * 4;
    if header_len < MIN_HEADER_LEN || header_len > bytes.len() {
        return Err(DecodeError::TcpMalformed);
    }
    Ok(Segment {
        src_port: u16::from_be_bytes([bytes[0], bytes[1]]),
        dst_port: u16::from_be_bytes([bytes[2], bytes[3]]),
        seq: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        flags: bytes[13],
        payload: &bytes[header_len..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_with_options() {
        let mut bytes = vec![
            0x13, 0xc4, 0xfd, 0x22, 0, 0, 0, 100, 0, 0, 0, 0, 0x60, 0x18, 0, 0, 0, 0, 0, 0,
        ];
        bytes.extend_from_slice(&[1, 1, 1, 0]);
        bytes.extend_from_slice(b"SIP");
        let segment = decode(&bytes).unwrap();
        assert_eq!(
            (segment.src_port, segment.dst_port, segment.seq),
            (5060, 64802, 100)
        );
        assert_eq!(segment.payload, b"SIP");
        assert!(!segment.has(flag::SYN));
    }

    #[test]
    fn bad_offsets() {
        let mut bytes = vec![0u8; 20];
        bytes[12] = 0x40;
        assert_eq!(decode(&bytes), Err(DecodeError::TcpMalformed));
        bytes[12] = 0xf0;
        assert_eq!(decode(&bytes), Err(DecodeError::TcpMalformed));
        assert_eq!(decode(&bytes[..10]), Err(DecodeError::TcpMalformed));
    }
}
