//! Capture files written by tests: classic pcap, and pcapng in either
//! byte order with the interface options that set timestamp units
//! (`if_tsresol`) and offsets (`if_tsoffset`).

use std::io::Write;
use std::path::Path;

/// Writes `frames` (Ethernet, with their microsecond timestamps) as a
/// classic little-endian pcap file.
pub fn write_pcap(path: &Path, frames: &[(u64, Vec<u8>)]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(&pcap(frames))?;
    out.flush()
}

/// The bytes of a classic little-endian pcap file of Ethernet `frames`
/// with microsecond timestamps.
pub fn pcap(frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (micros, frame) in frames {
        out.extend_from_slice(&((micros / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(frame);
    }
    out
}

/// A pcapng interface: Ethernet, with optional timestamp options and name.
#[derive(Clone, Copy, Debug, Default)]
pub struct PcapngInterface {
    /// `if_name`.
    pub name: Option<&'static str>,
    /// `if_tsresol`: 10^-n seconds, or 2^-n with the high bit set.
    pub tsresol: Option<u8>,
    /// `if_tsoffset`: seconds added to every timestamp.
    pub tsoffset: Option<i64>,
}

/// The bytes of a pcapng file: one section in the given byte order, one
/// interface, and an enhanced packet block per frame, each with its
/// timestamp in the interface's units.
pub fn pcapng(big_endian: bool, interface: PcapngInterface, frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let block = |kind: u32, body: &[u8]| -> Vec<u8> {
        let padded = body.len().div_ceil(4) * 4;
        let len = (12 + padded) as u32;
        let mut b = u32b(kind).to_vec();
        b.extend_from_slice(&u32b(len));
        b.extend_from_slice(body);
        b.resize(8 + padded, 0);
        b.extend_from_slice(&u32b(len));
        b
    };
    let mut shb = u32b(0x1a2b_3c4d).to_vec();
    shb.extend_from_slice(&u16b(1));
    shb.extend_from_slice(&u16b(0));
    shb.extend_from_slice(&[0xff; 8]);
    let mut out = block(0x0a0d_0d0a, &shb);
    let mut idb = u16b(1).to_vec();
    idb.extend_from_slice(&u16b(0));
    idb.extend_from_slice(&u32b(262_144));
    if let Some(name) = interface.name {
        idb.extend_from_slice(&u16b(2));
        idb.extend_from_slice(&u16b(name.len() as u16));
        idb.extend_from_slice(name.as_bytes());
        idb.resize(idb.len().div_ceil(4) * 4, 0);
    }
    if let Some(resolution) = interface.tsresol {
        idb.extend_from_slice(&u16b(9));
        idb.extend_from_slice(&u16b(1));
        idb.extend_from_slice(&[resolution, 0, 0, 0]);
    }
    if let Some(offset) = interface.tsoffset {
        idb.extend_from_slice(&u16b(14));
        idb.extend_from_slice(&u16b(8));
        idb.extend_from_slice(&if big_endian {
            offset.to_be_bytes()
        } else {
            offset.to_le_bytes()
        });
    }
    idb.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&block(1, &idb));
    for (units, frame) in frames {
        let mut epb = u32b(0).to_vec();
        epb.extend_from_slice(&u32b((units >> 32) as u32));
        epb.extend_from_slice(&u32b(*units as u32));
        epb.extend_from_slice(&u32b(frame.len() as u32));
        epb.extend_from_slice(&u32b(frame.len() as u32));
        epb.extend_from_slice(frame);
        out.extend_from_slice(&block(6, &epb));
    }
    out
}
