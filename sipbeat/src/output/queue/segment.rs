//! The disk queue's bytes: `seg-<first seq, 16 hex digits>.sbq` files,
//! each a header (magic, then the first seq) then records
//!
//! ```text
//! u32 len (of what follows)  u32 crc32 (of what follows it)
//! u64 seq  u64 timestamp_ns  u8 flags  u16 key_len  u8 method_len
//! key  method  payload
//! ```
//!
//! then an end mark (a zero length), which the next write overwrites; all
//! little-endian. And `acked`, the first seq not yet delivered (8 bytes and
//! their CRC, replaced by rename).
//!
//! Files of delivered segments are reused, so what follows the end mark
//! can be records of an earlier use: seqs below the segment's first. A
//! record cut short by a crash (a torn tail), or old records met before an
//! end mark, end the reading as torn. A damaged record in the middle is
//! skipped to the next one whose checksum holds and whose seq follows.
//! Nothing is ever a panic (`fuzz/fuzz_targets/disk_segment.rs`).

use std::fs;
use std::io;
use std::path::Path;

use crate::output::{Dataset, EventMeta};
use crate::sip::SipType;

/// Every segment file starts with this, then the segment's first seq.
pub const MAGIC: &[u8; 8] = b"SBQUEUE2";
/// Bytes before a segment's first record.
pub const SEGMENT_HEADER: usize = MAGIC.len() + 8;
/// What ends the records written so far.
pub const END_MARK: [u8; 4] = [0; 4];

/// The header of the segment whose first seq is `first`.
pub fn segment_header(first: u64) -> [u8; SEGMENT_HEADER] {
    let mut header = [0; SEGMENT_HEADER];
    header[..MAGIC.len()].copy_from_slice(MAGIC);
    header[MAGIC.len()..].copy_from_slice(&first.to_le_bytes());
    header
}

/// Bytes of a record before its key.
pub(super) const HEADER: usize = 4 + 4 + 8 + 8 + 1 + 2 + 1;
/// The largest record written or believed (a Kafka message is at most a
/// few MiB).
pub const MAX_RECORD: usize = 16 << 20;

/// One event as the queue keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub seq: u64,
    pub meta: EventMeta<'a>,
    pub payload: &'a [u8],
}

const HAS_KEY: u8 = 1;
const HAS_METHOD: u8 = 2;
const DATASET_CALL: u8 = 4;
const KIND_SHIFT: u8 = 3;
/// `sip.type`'s code in the flags (0: none).
const SIP_TYPES: [Option<SipType>; 3] = [None, Some(SipType::Request), Some(SipType::Response)];

/// The key and method as kept: cut to what their length fields hold.
fn key_and_method<'a>(meta: &EventMeta<'a>) -> (Option<&'a [u8]>, Option<&'a [u8]>) {
    (
        meta.call_id.map(|k| &k[..k.len().min(u16::MAX as usize)]),
        meta.method.map(|m| &m[..m.len().min(u8::MAX as usize)]),
    )
}

impl Record<'_> {
    /// The bytes [`Record::encode`] writes for an event.
    pub fn encoded_len(meta: &EventMeta<'_>, payload: &[u8]) -> usize {
        let (key, method) = key_and_method(meta);
        HEADER + key.map_or(0, <[u8]>::len) + method.map_or(0, <[u8]>::len) + payload.len()
    }

    /// Appends the record's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (key, method) = key_and_method(&self.meta);
        let code = SIP_TYPES.iter().position(|t| *t == self.meta.sip_type);
        let mut flags = (code.unwrap_or(0) as u8) << KIND_SHIFT;
        if key.is_some() {
            flags |= HAS_KEY;
        }
        if method.is_some() {
            flags |= HAS_METHOD;
        }
        if self.meta.dataset == Dataset::Call {
            flags |= DATASET_CALL;
        }
        let (key, method) = (key.unwrap_or_default(), method.unwrap_or_default());
        let start = out.len();
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.meta.timestamp_ns.to_le_bytes());
        out.push(flags);
        out.extend_from_slice(&(key.len() as u16).to_le_bytes());
        out.push(method.len() as u8);
        out.extend_from_slice(key);
        out.extend_from_slice(method);
        out.extend_from_slice(self.payload);
        let len = (out.len() - start - 4) as u32;
        let crc = crc32fast::hash(&out[start + 8..]);
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Why a record could not be read at some offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bad {
    /// Not enough bytes for what its length says.
    Short,
    /// A length or checksum that does not hold.
    Damaged,
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

pub(super) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// The record at the start of `bytes`, and its length.
pub(super) fn decode(bytes: &[u8]) -> Result<(Record<'_>, usize), Bad> {
    decode_with(bytes, true)
}

/// [`decode`] without the checksum: for records checked already (or never
/// written out).
pub(super) fn decode_trusted(bytes: &[u8]) -> Result<(Record<'_>, usize), Bad> {
    decode_with(bytes, false)
}

fn decode_with(bytes: &[u8], check: bool) -> Result<(Record<'_>, usize), Bad> {
    if bytes.len() < 4 {
        return Err(Bad::Short);
    }
    let len = u32_at(bytes, 0) as usize;
    if !(HEADER - 4..=MAX_RECORD).contains(&len) {
        return Err(Bad::Damaged);
    }
    let Some(record) = bytes.get(..4 + len) else {
        return Err(Bad::Short);
    };
    if check && crc32fast::hash(&record[8..]) != u32_at(record, 4) {
        return Err(Bad::Damaged);
    }
    let flags = record[24];
    let key_len = usize::from(u16_at(record, 25));
    let method_len = usize::from(record[27]);
    let payload_at = HEADER + key_len + method_len;
    if payload_at > record.len() {
        return Err(Bad::Damaged);
    }
    let key = &record[HEADER..HEADER + key_len];
    let method = &record[HEADER + key_len..payload_at];
    let meta = EventMeta {
        call_id: (flags & HAS_KEY != 0).then_some(key),
        method: (flags & HAS_METHOD != 0).then_some(method),
        sip_type: SIP_TYPES
            .get(usize::from(flags >> KIND_SHIFT))
            .copied()
            .flatten(),
        timestamp_ns: u64_at(record, 16),
        dataset: if flags & DATASET_CALL != 0 {
            Dataset::Call
        } else {
            Dataset::Sip
        },
    };
    Ok((
        Record {
            seq: u64_at(record, 8),
            meta,
            payload: &record[payload_at..],
        },
        4 + len,
    ))
}

/// Bytes of the whole records at the start of `bytes`, by their lengths
/// alone (records this process wrote; nothing is checked).
pub(super) fn whole_records(bytes: &[u8]) -> usize {
    let mut at = 0;
    while let Some(len) = record_len(&bytes[at..])
        && at + len <= bytes.len()
    {
        at += len;
    }
    at
}

/// The length its first four bytes give the record at the start of
/// `bytes` (unchecked), those four included.
pub(super) fn record_len(bytes: &[u8]) -> Option<usize> {
    (bytes.len() >= 4).then(|| 4 + u32_at(bytes, 0) as usize)
}

/// What reading a run of segment bytes found besides its records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Walked {
    /// Bytes up to the end of the last whole record (where reading can
    /// go on once more bytes are there).
    pub whole: usize,
    /// A record cut short at the end.
    pub torn: bool,
    /// Bytes of damaged records skipped.
    pub corrupt_bytes: usize,
}

/// Reads the records in `bytes` (segment bytes after the header of the
/// segment whose first seq is `first`), in order, to `on_record`, up to
/// the end mark; damaged ones are skipped to the next record whose checksum
/// holds and whose seq follows. Never panics, whatever the bytes.
fn walk(bytes: &[u8], first: u64, mut on_record: impl FnMut(Record<'_>)) -> Walked {
    let mut walked = Walked::default();
    // The seq a record must reach to belong to this use of the file.
    let mut next = first;
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at..].starts_with(&END_MARK) {
            return walked;
        }
        match decode(&bytes[at..]) {
            Ok((record, len)) if record.seq >= next => {
                next = record.seq + 1;
                on_record(record);
                at += len;
                walked.whole = at;
            }
            // An earlier use's records, with no end mark before them: the
            // last write was cut short.
            Ok(_) | Err(Bad::Short) => {
                walked.torn = true;
                return walked;
            }
            Err(Bad::Damaged) => {
                // The next offset where a record of this use checks out.
                let belongs =
                    |from: usize| matches!(decode(&bytes[from..]), Ok((r, _)) if r.seq >= next);
                match (at + 1..bytes.len()).find(|&from| belongs(from)) {
                    Some(from) => {
                        walked.corrupt_bytes += from - at;
                        at = from;
                    }
                    None => {
                        walked.torn = true;
                        return walked;
                    }
                }
            }
        }
    }
    // No end mark: the write was cut right after a whole record.
    walked
}

/// A whole segment file's bytes: its records after the header, or `None`
/// when it is not a segment.
pub fn read_segment(file: &[u8], on_record: impl FnMut(Record<'_>)) -> Option<Walked> {
    let body = file.strip_prefix(MAGIC.as_slice())?;
    let first = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    let mut walked = walk(&body[8..], first, on_record);
    walked.whole += SEGMENT_HEADER;
    Some(walked)
}

/// The file holding the segment whose first seq is `first`.
pub(super) fn segment_name(first: u64) -> String {
    format!("seg-{first:016x}.sbq")
}

/// A delivered segment's file kept to be reused.
pub(super) fn spare_name(first: u64) -> String {
    format!("spare-{first:016x}.sbq")
}

/// `acked`: the first seq not yet delivered, as [`write_acked`] left it.
pub(super) fn read_acked(path: &Path) -> Option<u64> {
    let bytes = fs::read(path).ok()?;
    let (value, crc) = (bytes.get(..8)?, bytes.get(8..12)?);
    (crc32fast::hash(value).to_le_bytes() == crc).then(|| u64_at(value, 0))
}

/// Replaces `acked` (by rename: a crash leaves the old value or the new).
pub(super) fn write_acked(dir: &Path, acked: u64) -> io::Result<()> {
    let mut bytes = acked.to_le_bytes().to_vec();
    bytes.extend_from_slice(&crc32fast::hash(&acked.to_le_bytes()).to_le_bytes());
    let tmp = dir.join("acked.tmp");
    fs::write(&tmp, &bytes)?;
    fs::rename(&tmp, dir.join("acked"))
}
