//! `queue.disk`: events kept on disk until Kafka has them.
//!
//! Every event the Kafka sink takes is appended here first, numbered in
//! order (its *seq*), then produced; it leaves the disk once the broker's
//! delivery report for it (and every earlier one) is in. When librdkafka's
//! memory queue is full, or the broker is away, later events wait on disk
//! only and are produced from it in order once there is room; after a
//! restart every event not known delivered is produced again, so delivery
//! is at least once, and events delivered but not yet recorded as such at a
//! crash come twice (counted as `recovered`).
//!
//! On disk: `seg-<first seq, 16 hex digits>.sbq` files, each a magic header
//! then records
//!
//! ```text
//! u32 len (of what follows)  u32 crc32 (of what follows it)
//! u64 seq  u64 timestamp_ns  u8 flags  u16 key_len  u8 method_len
//! key  method  payload
//! ```
//!
//! little-endian; and `acked`, the first seq not yet delivered (8 bytes and
//! their CRC, replaced by rename). A record cut short by a crash (a torn
//! tail) fails its length or checksum: the reader stops there, and the
//! writer cuts the file back to its last whole record. A damaged record in
//! the middle is skipped to the next one whose checksum holds. Neither is
//! ever a panic (`fuzz/fuzz_targets/disk_segment.rs`).
//!
//! Bounded: the segment files together stay within `max_size`; an event
//! that does not fit is dropped (the newest are dropped, the queued ones
//! kept) and counted. An I/O error is logged once a period and counted, and
//! the event goes straight to librdkafka as without a disk queue.

use std::collections::{BTreeSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::EventMeta;
use crate::event::timestamp::now_ns;

/// Every segment file starts with this.
pub const MAGIC: &[u8; 8] = b"SBQUEUE1";
/// Bytes of a record before its key.
const HEADER: usize = 4 + 4 + 8 + 8 + 1 + 2 + 1;
/// The largest record written or believed (a Kafka message is at most a
/// few MiB).
pub const MAX_RECORD: usize = 16 << 20;

crate::counters! {
    /// What the disk queue did.
    pub struct QueueStats {
        /// Events written to the disk queue.
        queue_written,
        /// Bytes written to the disk queue.
        queue_written_bytes,
        /// Events read back from disk to be produced (the broker was away or
        /// librdkafka's queue full when they came, or they were left from
        /// before a restart).
        queue_replayed,
        /// Bytes read back from disk.
        queue_replayed_bytes,
        /// Events whose delivery the broker confirmed, so their place on disk
        /// could go.
        queue_acknowledged,
        /// Events found on disk at start, not known delivered: sent again
        /// (those the broker had already are duplicates).
        queue_recovered,
        /// Events dropped because the queue was at max_size.
        queue_dropped_full,
        /// Records cut short at a segment's end (a crash mid-write), skipped.
        queue_torn,
        /// Bytes of damaged records skipped in the middle of a segment.
        queue_corrupt_bytes,
        /// Failed reads and writes (a full disk, a removed directory).
        queue_io_errors,
    }
}

/// A size in bytes, written `256MiB`, `10GB`, `1.5 GiB` or as a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = (&text[..split], text[split..].trim());
        let number: f64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a size (256MiB, 10GB, ...)"))?;
        let scale: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "tib" => 1 << 40,
            _ => {
                return Err(format!(
                    "{text:?}: unknown unit {unit:?} (KB, MB, GB, KiB, MiB, GiB...)"
                ));
            }
        };
        Ok(ByteSize((number * scale as f64) as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(text) => ByteSize::parse(&text).map_err(serde::de::Error::custom),
        }
    }
}

/// `queue.disk` (Beats' keys).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskQueueConfig {
    /// The directory; each worker keeps its own queue in a subdirectory.
    pub path: PathBuf,
    /// The segment files together stay within this.
    #[serde(default = "DiskQueueConfig::default_max_size")]
    pub max_size: ByteSize,
    /// One segment file's size (default: an eighth of max_size, 1 MiB to
    /// 64 MiB).
    #[serde(default)]
    pub segment_size: Option<ByteSize>,
}

impl DiskQueueConfig {
    /// Beats' default.
    pub const DEFAULT_MAX_SIZE: ByteSize = ByteSize(10_000_000_000);

    fn default_max_size() -> ByteSize {
        Self::DEFAULT_MAX_SIZE
    }

    pub fn new(path: impl Into<PathBuf>, max_size: ByteSize) -> DiskQueueConfig {
        DiskQueueConfig {
            path: path.into(),
            max_size,
            segment_size: None,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.path.as_os_str().is_empty() {
            return Err("queue.disk.path is empty".into());
        }
        if self.max_size.0 < 64 << 10 {
            return Err(format!(
                "queue.disk.max_size {} is below 64 KiB",
                self.max_size.0
            ));
        }
        Ok(())
    }

    fn segment_bytes(&self) -> u64 {
        self.segment_size
            .map_or(self.max_size.0 / 8, |s| s.0)
            .clamp(64 << 10, 64 << 20)
    }
}

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
const KINDS: [&str; 3] = ["", "request", "response"];

impl Record<'_> {
    /// Appends the record's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let key = self
            .meta
            .call_id
            .map(|k| &k[..k.len().min(u16::MAX as usize)]);
        let method = self
            .meta
            .method
            .map(|m| &m[..m.len().min(u8::MAX as usize)]);
        let kind = KINDS.iter().position(|k| *k == self.meta.kind).unwrap_or(0) as u8;
        let mut flags = kind << KIND_SHIFT;
        if key.is_some() {
            flags |= HAS_KEY;
        }
        if method.is_some() {
            flags |= HAS_METHOD;
        }
        if self.meta.dataset == "sip.call" {
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
enum Bad {
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

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// The record at the start of `bytes`, and its length.
fn decode(bytes: &[u8]) -> Result<(Record<'_>, usize), Bad> {
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
    if crc32fast::hash(&record[8..]) != u32_at(record, 4) {
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
        kind: KINDS
            .get(usize::from(flags >> KIND_SHIFT))
            .copied()
            .unwrap_or_default(),
        timestamp_ns: u64_at(record, 16),
        dataset: if flags & DATASET_CALL != 0 {
            "sip.call"
        } else {
            "sip"
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

/// Reads the records in `bytes` (segment bytes after the magic), in
/// order, to `on_record`; damaged ones are skipped to the next record
/// whose checksum holds. Never panics, whatever the bytes.
pub fn walk(bytes: &[u8], mut on_record: impl FnMut(Record<'_>)) -> Walked {
    let mut walked = Walked::default();
    let mut at = 0;
    while at < bytes.len() {
        match decode(&bytes[at..]) {
            Ok((record, len)) => {
                on_record(record);
                at += len;
                walked.whole = at;
            }
            Err(Bad::Short) => {
                walked.torn = true;
                break;
            }
            Err(Bad::Damaged) => {
                // The next offset where a whole record checks out.
                match (at + 1..bytes.len()).find(|&next| decode(&bytes[next..]).is_ok()) {
                    Some(next) => {
                        walked.corrupt_bytes += next - at;
                        at = next;
                    }
                    None => {
                        walked.torn = true;
                        break;
                    }
                }
            }
        }
    }
    walked
}

/// A whole segment file's bytes: its records after the magic, or `None`
/// when it is not a segment.
pub fn read_segment(file: &[u8], on_record: impl FnMut(Record<'_>)) -> Option<Walked> {
    let body = file.strip_prefix(MAGIC.as_slice())?;
    let mut walked = walk(body, on_record);
    walked.whole += MAGIC.len();
    Some(walked)
}

/// Why an event was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue is at `max_size`: the event is dropped.
    Full,
    /// A segment could not be made: the event goes on without the queue.
    Io,
}

/// One segment file.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// The first seq it holds (its name).
    first: u64,
    /// One past the last seq it holds.
    end: u64,
    /// Its length, the records not yet written included.
    bytes: u64,
    /// When its first record was written (wall clock, ns): the oldest
    /// queued event is at most this old.
    opened_ns: u64,
}

fn segment_name(first: u64) -> String {
    format!("seg-{first:016x}.sbq")
}

/// The queue of one worker.
#[derive(Debug)]
pub struct DiskQueue {
    dir: PathBuf,
    max_size: u64,
    segment_size: u64,
    segments: VecDeque<Segment>,
    /// Their bytes together.
    total_bytes: u64,
    /// The last segment, open for writing at its end.
    file: Option<File>,
    /// Encoded records not yet written to the file, and the first one's seq.
    pending: Vec<u8>,
    pending_first: u64,
    /// The seq the next event gets.
    head: u64,
    /// Every seq below this is delivered.
    acked: u64,
    acked_saved: u64,
    /// Delivered seqs above `acked`.
    delivered: BTreeSet<u64>,
    /// The next seq to produce, and where its record starts on disk when
    /// known (it is not after events were produced straight from memory).
    cursor: u64,
    cursor_offset: Option<u64>,
    /// Records read from disk waiting for room in librdkafka.
    replay: Vec<u8>,
    replay_at: usize,
    stats: QueueStats,
    log: crate::log::Limiter,
}

/// Bytes of encoded records kept before they are written (they are also
/// written at every flush, twice a second).
const WRITE_BATCH: usize = 256 << 10;
/// Bytes read from a segment at a time when replaying: at least one whole
/// record.
const READ_CHUNK: u64 = MAX_RECORD as u64;

impl DiskQueue {
    /// Opens (or creates) the queue in `dir`; what an earlier run left
    /// undelivered is produced first.
    pub fn open(config: &DiskQueueConfig, dir: &Path) -> io::Result<DiskQueue> {
        fs::create_dir_all(dir)?;
        let acked = read_acked(&dir.join("acked")).unwrap_or(0);
        let mut queue = DiskQueue {
            dir: dir.to_path_buf(),
            max_size: config.max_size.0,
            segment_size: config.segment_bytes(),
            segments: VecDeque::new(),
            total_bytes: 0,
            file: None,
            pending: Vec::new(),
            pending_first: 0,
            head: 0,
            acked,
            acked_saved: acked,
            delivered: BTreeSet::new(),
            cursor: acked,
            cursor_offset: None,
            replay: Vec::new(),
            replay_at: 0,
            stats: QueueStats::default(),
            log: crate::log::Limiter::default(),
        };
        let mut names: Vec<(u64, PathBuf)> = fs::read_dir(dir)?
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let hex = name.strip_prefix("seg-")?.strip_suffix(".sbq")?;
                Some((u64::from_str_radix(hex, 16).ok()?, entry.path()))
            })
            .collect();
        names.sort();
        let count = names.len();
        for (index, (first, path)) in names.into_iter().enumerate() {
            let bytes = fs::read(&path)?;
            let mut end = first;
            let mut left = 0;
            let walked = read_segment(&bytes, |record| {
                end = end.max(record.seq + 1);
                left += u64::from(record.seq >= acked);
            });
            let Some(walked) = walked else {
                // Not a segment (or its magic is damaged): nothing to read.
                queue.stats.queue_corrupt_bytes += bytes.len() as u64;
                fs::remove_file(&path)?;
                continue;
            };
            queue.stats.queue_corrupt_bytes += walked.corrupt_bytes as u64;
            if walked.torn {
                queue.stats.queue_torn += 1;
                if index + 1 == count {
                    // Cut back to the last whole record before appending.
                    OpenOptions::new()
                        .write(true)
                        .open(&path)?
                        .set_len(walked.whole as u64)?;
                }
            }
            if end <= acked {
                fs::remove_file(&path)?;
                continue;
            }
            queue.stats.queue_recovered += left;
            queue.total_bytes += walked.whole as u64;
            queue.segments.push_back(Segment {
                path,
                first,
                end,
                bytes: walked.whole as u64,
                opened_ns: now_ns(),
            });
        }
        queue.head = queue.segments.back().map_or(acked, |s| s.end).max(acked);
        queue.pending_first = queue.head;
        if let Some(last) = queue.segments.back()
            && last.bytes < queue.segment_size
        {
            queue.file = Some(OpenOptions::new().append(true).open(&last.path)?);
        }
        Ok(queue)
    }

    pub fn stats(&self) -> &QueueStats {
        &self.stats
    }

    /// Events not yet delivered.
    pub fn depth(&self) -> u64 {
        self.head - self.acked
    }

    /// Bytes of segment files on disk (and about to be).
    pub fn bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Seconds since the oldest segment holding undelivered events began.
    pub fn oldest_age_secs(&self) -> u64 {
        if self.depth() == 0 {
            return 0;
        }
        self.segments
            .front()
            .map_or(0, |s| now_ns().saturating_sub(s.opened_ns) / 1_000_000_000)
    }

    /// Whether every queued event has been handed to librdkafka.
    pub fn caught_up(&self) -> bool {
        self.cursor >= self.head
    }

    /// Appends an event; its seq, or why it was not (counted; an I/O error
    /// also logged).
    pub fn append(&mut self, meta: &EventMeta<'_>, payload: &[u8]) -> Result<u64, Refused> {
        let seq = self.head;
        let len = (HEADER
            + meta.call_id.map_or(0, |k| k.len().min(u16::MAX as usize))
            + meta.method.map_or(0, |m| m.len().min(u8::MAX as usize))
            + payload.len()) as u64;
        if self.bytes() + len + MAGIC.len() as u64 > self.max_size {
            self.stats.queue_dropped_full += 1;
            return Err(Refused::Full);
        }
        let full = self.file.is_none()
            || self
                .segments
                .back()
                .is_none_or(|s| s.bytes > MAGIC.len() as u64 && s.bytes + len > self.segment_size);
        if full && let Err(error) = self.new_segment() {
            self.io_error("create", &error);
            return Err(Refused::Io);
        }
        let last = self.segments.back_mut().expect("a segment");
        last.end = seq + 1;
        last.bytes += len;
        self.total_bytes += len;
        if self.pending.is_empty() {
            self.pending_first = seq;
        }
        let before = self.pending.len();
        Record {
            seq,
            meta: *meta,
            payload,
        }
        .encode(&mut self.pending);
        debug_assert_eq!((self.pending.len() - before) as u64, len);
        self.head += 1;
        self.stats.queue_written += 1;
        self.stats.queue_written_bytes += len;
        if self.pending.len() >= WRITE_BATCH {
            self.write_pending();
        }
        Ok(seq)
    }

    /// Whether `seq` is the next to produce: everything before it has
    /// been handed to librdkafka.
    pub fn is_next(&self, seq: u64) -> bool {
        self.cursor == seq
    }

    /// Ends the segment being written and starts one at `head`.
    fn new_segment(&mut self) -> io::Result<()> {
        self.write_pending();
        let path = self.dir.join(segment_name(self.head));
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)?;
        file.write_all(MAGIC)?;
        self.file = Some(file);
        self.total_bytes += MAGIC.len() as u64;
        self.segments.push_back(Segment {
            path,
            first: self.head,
            end: self.head,
            bytes: MAGIC.len() as u64,
            opened_ns: now_ns(),
        });
        Ok(())
    }

    /// Hands what waits to the kernel: from then on a SIGKILL loses none
    /// of it.
    pub fn write_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let result = match &mut self.file {
            Some(file) => file.write_all(&self.pending),
            None => Err(io::Error::other("no segment open")),
        };
        if let Err(error) = result {
            // Those events are not on disk: if librdkafka did not take
            // them already, they are lost. Either way the queue goes on.
            for seq in self.pending_first..self.head {
                self.acknowledge(seq);
            }
            self.file = None;
            self.io_error("write", &error);
        }
        self.pending.clear();
        self.pending_first = self.head;
    }

    /// `seq` was handed to librdkafka straight from memory.
    pub fn produced(&mut self, seq: u64) {
        if seq == self.cursor {
            self.cursor += 1;
            self.cursor_offset = None;
        }
    }

    /// The next record to produce from disk (the queue is behind) and its
    /// length; `None` when caught up or nothing more can be read.
    pub fn next_unsent(&mut self) -> Option<(Record<'_>, u64)> {
        if self.caught_up() {
            return None;
        }
        if decode(&self.replay[self.replay_at..]).is_err() {
            self.write_pending();
            self.fill_replay();
        }
        let (record, len) = decode(&self.replay[self.replay_at..]).ok()?;
        Some((record, len as u64))
    }

    /// The record [`DiskQueue::next_unsent`] gave was handed to librdkafka.
    pub fn replayed(&mut self, seq: u64, len: u64) {
        self.replay_at += len as usize;
        self.stats.queue_replayed += 1;
        self.stats.queue_replayed_bytes += len;
        self.cursor = seq + 1;
        self.cursor_offset = self.cursor_offset.map(|offset| offset + len);
    }

    /// Reads records from the cursor on into the replay buffer.
    fn fill_replay(&mut self) {
        self.replay.clear();
        self.replay_at = 0;
        while !self.caught_up() {
            let Some(segment) = self.segments.iter().find(|s| self.cursor < s.end) else {
                self.cursor = self.head;
                return;
            };
            let (path, first, end, size) = (
                segment.path.clone(),
                segment.first,
                segment.end,
                segment.bytes,
            );
            if self.cursor < first {
                // Seqs lost to a failed write.
                self.cursor = first;
                self.cursor_offset = None;
            }
            // An offset known is into the cursor's segment, unless the
            // cursor is at that segment's start.
            let offset = match self.cursor_offset {
                Some(offset) if self.cursor != first => offset,
                _ => MAGIC.len() as u64,
            };
            if offset >= size {
                self.cursor = end;
                self.cursor_offset = None;
                continue;
            }
            let asked = (size - offset).min(READ_CHUNK);
            let mut chunk = vec![0; asked as usize];
            let read = File::open(&path).and_then(|file| {
                let mut got = 0;
                while got < chunk.len() {
                    match file.read_at(&mut chunk[got..], offset + got as u64)? {
                        0 => break,
                        n => got += n,
                    }
                }
                chunk.truncate(got);
                Ok(())
            });
            if let Err(error) = read {
                self.io_error("read", &error);
                self.cursor = end;
                self.cursor_offset = None;
                continue;
            }
            let reaches_end = (chunk.len() as u64) < asked || offset + asked >= size;
            // Skip what is already produced (a segment read from its start).
            let mut at = 0;
            let found = loop {
                match decode(&chunk[at..]) {
                    Ok((record, _)) if record.seq >= self.cursor => break Ok(()),
                    Ok((_, len)) => at += len,
                    Err(bad) => break Err(bad),
                }
            };
            match found {
                Ok(()) => {
                    self.cursor_offset = Some(offset + at as u64);
                    chunk.drain(..at);
                    self.replay = chunk;
                    return;
                }
                // A record runs past this chunk: read on from it.
                Err(Bad::Short) if at > 0 && !reaches_end => {
                    self.cursor_offset = Some(offset + at as u64);
                }
                // The segment ends here (records counted never reached the
                // disk: a failed write).
                Err(Bad::Short) => {
                    self.cursor = end;
                    self.cursor_offset = None;
                }
                Err(Bad::Damaged) => {
                    self.stats.queue_corrupt_bytes += (size - offset - at as u64).max(1);
                    self.cursor = end;
                    self.cursor_offset = None;
                }
            }
        }
    }

    /// `seq` is delivered (or failed for good: it never will be).
    pub fn acknowledge(&mut self, seq: u64) {
        if seq < self.acked || seq >= self.head {
            return;
        }
        self.delivered.insert(seq);
        while self.delivered.first() == Some(&self.acked) {
            self.delivered.pop_first();
            self.acked += 1;
            self.stats.queue_acknowledged += 1;
        }
    }

    /// Writes what waits, removes delivered segments and records how far
    /// delivery got (at every flush).
    pub fn commit(&mut self) {
        self.write_pending();
        // The last segment stays open for appending, delivered or not.
        while self.segments.len() > 1 && self.segments[0].end <= self.acked {
            let segment = self.segments.pop_front().expect("a segment");
            self.total_bytes -= segment.bytes;
            if let Err(error) = fs::remove_file(&segment.path) {
                self.io_error("remove", &error);
            }
        }
        if self.acked != self.acked_saved {
            match write_acked(&self.dir, self.acked) {
                Ok(()) => self.acked_saved = self.acked,
                Err(error) => self.io_error("write", &error),
            }
        }
    }

    fn io_error(&mut self, what: &str, error: &io::Error) {
        self.stats.queue_io_errors += 1;
        self.log.warn_as(
            what,
            &format!("disk queue {}: {what}: {error}", self.dir.display()),
        );
    }
}

fn read_acked(path: &Path) -> Option<u64> {
    let bytes = fs::read(path).ok()?;
    let (value, crc) = (bytes.get(..8)?, bytes.get(8..12)?);
    (crc32fast::hash(value).to_le_bytes() == crc).then(|| u64_at(value, 0))
}

fn write_acked(dir: &Path, acked: u64) -> io::Result<()> {
    let mut bytes = acked.to_le_bytes().to_vec();
    bytes.extend_from_slice(&crc32fast::hash(&acked.to_le_bytes()).to_le_bytes());
    let tmp = dir.join("acked.tmp");
    fs::write(&tmp, &bytes)?;
    fs::rename(&tmp, dir.join("acked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let path =
                std::env::temp_dir().join(format!("sipbeat-queue-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            Dir(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn config(max_size: u64, segment: u64) -> DiskQueueConfig {
        DiskQueueConfig {
            path: PathBuf::new(),
            max_size: ByteSize(max_size),
            segment_size: Some(ByteSize(segment)),
        }
    }

    fn meta(i: u64) -> EventMeta<'static> {
        const IDS: [&[u8]; 3] = [b"a@h", b"b@h", b"c@h"];
        EventMeta {
            call_id: Some(IDS[(i % 3) as usize]),
            method: i.is_multiple_of(2).then_some(&b"INVITE"[..]),
            kind: if i.is_multiple_of(2) {
                "request"
            } else {
                "response"
            },
            timestamp_ns: 1_000 + i,
            dataset: if i.is_multiple_of(5) {
                "sip.call"
            } else {
                "sip"
            },
        }
    }

    fn payload(i: u64) -> Vec<u8> {
        format!(
            "{{\"n\":{i},\"pad\":\"{}\"}}",
            "x".repeat((i % 300) as usize)
        )
        .into_bytes()
    }

    /// A queue in `dir` holding events 0..`count`, written and closed; the
    /// path of its last segment.
    fn written(cfg: &DiskQueueConfig, dir: &Dir, count: u64) -> PathBuf {
        let mut queue = DiskQueue::open(cfg, &dir.0).unwrap();
        for i in 0..count {
            queue.append(&meta(i), &payload(i)).unwrap();
        }
        queue.commit();
        queue.segments.back().unwrap().path.clone()
    }

    /// Every record from the cursor on, as (seq, meta matches, payload).
    fn drain(queue: &mut DiskQueue) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Some((record, len)) = queue.next_unsent() {
            let seq = record.seq;
            assert_eq!(record.meta, meta(seq), "seq {seq}");
            assert_eq!(record.payload, payload(seq), "seq {seq}");
            queue.replayed(seq, len);
            seqs.push(seq);
        }
        seqs
    }

    #[test]
    fn sizes_take_units() {
        assert_eq!(ByteSize::parse("256MiB"), Ok(ByteSize(256 << 20)));
        assert_eq!(ByteSize::parse("10GB"), Ok(ByteSize(10_000_000_000)));
        assert_eq!(ByteSize::parse("1.5 KiB"), Ok(ByteSize(1536)));
        assert_eq!(ByteSize::parse("4096"), Ok(ByteSize(4096)));
        assert!(ByteSize::parse("ten").is_err());
        assert!(ByteSize::parse("5 parsecs").is_err());
    }

    #[test]
    fn what_waits_on_disk_comes_back_in_order_after_a_restart() {
        let dir = Dir::new("restart");
        let cfg = config(64 << 20, 64 << 10);
        let mut queue = DiskQueue::open(&cfg, &dir.0).unwrap();
        // The first ten go straight to Kafka; the broker confirms five.
        for i in 0..10 {
            let seq = queue.append(&meta(i), &payload(i)).unwrap();
            assert_eq!(seq, i);
            queue.produced(seq);
        }
        assert!(queue.caught_up());
        for seq in [0, 1, 2, 4, 3] {
            queue.acknowledge(seq);
        }
        // Then librdkafka is full: the rest wait on disk only.
        for i in 10..1000 {
            queue.append(&meta(i), &payload(i)).unwrap();
        }
        assert!(!queue.caught_up());
        assert_eq!(drain(&mut queue)[..3], [10, 11, 12]);
        queue.commit();
        assert!(queue.segments.len() > 2, "several segments");
        assert_eq!(queue.depth(), 995);
        drop(queue);
        // A restart: everything from the first seq not known delivered, in
        // order, whatever was produced before.
        let mut queue = DiskQueue::open(&cfg, &dir.0).unwrap();
        assert_eq!(queue.stats().queue_recovered, 995);
        assert_eq!(drain(&mut queue), (5..1000).collect::<Vec<_>>());
        // Delivered: the segments go, and a restart finds nothing.
        for seq in 5..1000 {
            queue.acknowledge(seq);
        }
        queue.commit();
        assert_eq!(queue.segments.len(), 1, "only the open segment stays");
        let next = queue.append(&meta(1000), &payload(1000)).unwrap();
        assert_eq!(next, 1000);
        queue.acknowledge(1000);
        queue.commit();
        drop(queue);
        let mut queue = DiskQueue::open(&cfg, &dir.0).unwrap();
        assert_eq!(queue.stats().queue_recovered, 0);
        assert!(queue.next_unsent().is_none());
        assert_eq!(queue.append(&meta(1001), &payload(1001)), Ok(1001));
    }

    #[test]
    fn a_torn_tail_is_cut_and_counted() {
        let dir = Dir::new("torn");
        let cfg = config(64 << 20, 1 << 20);
        let path = written(&cfg, &dir, 50);
        // A crash in the middle of the last record's write.
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 7)
            .unwrap();
        let mut queue = DiskQueue::open(&cfg, &dir.0).unwrap();
        assert_eq!(queue.stats().queue_torn, 1);
        assert_eq!(queue.stats().queue_recovered, 49);
        // Appending goes on after the last whole record.
        assert_eq!(queue.append(&meta(49), &payload(49)), Ok(49));
        assert_eq!(drain(&mut queue), (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn a_flipped_bit_costs_its_record_only() {
        let dir = Dir::new("flip");
        let cfg = config(64 << 20, 1 << 20);
        let path = written(&cfg, &dir, 20);
        let mut bytes = fs::read(&path).unwrap();
        // Somewhere in the payload of record 10.
        let mut offsets = Vec::new();
        read_segment(&bytes, |r| offsets.push(r.payload.as_ptr() as usize)).unwrap();
        let at = offsets[10] - bytes.as_ptr() as usize + 3;
        bytes[at] ^= 0x20;
        fs::write(&path, &bytes).unwrap();
        let mut seen = Vec::new();
        let walked = read_segment(&bytes, |r| seen.push(r.seq)).unwrap();
        assert!(walked.corrupt_bytes > 0);
        assert!(!walked.torn);
        assert_eq!(seen, (0..20).filter(|&s| s != 10).collect::<Vec<_>>());
        let queue = DiskQueue::open(&cfg, &dir.0).unwrap();
        assert_eq!(queue.stats().queue_recovered, 19);
        assert!(queue.stats().queue_corrupt_bytes > 0);
    }

    #[test]
    fn at_max_size_the_newest_are_dropped_and_counted() {
        let dir = Dir::new("full");
        let cfg = config(1 << 20, 64 << 10);
        let mut queue = DiskQueue::open(&cfg, &dir.0).unwrap();
        let big = vec![b'x'; 10_000];
        let mut kept = 0;
        for i in 0..200 {
            if queue.append(&meta(i), &big).is_ok() {
                kept += 1;
            }
        }
        assert!(queue.bytes() <= 1 << 20, "{}", queue.bytes());
        assert_eq!(kept + queue.stats().queue_dropped_full, 200);
        assert!((90..=104).contains(&kept), "{kept}");
        // Delivery makes room again.
        for seq in 0..kept {
            queue.acknowledge(seq);
        }
        queue.commit();
        assert!(queue.append(&meta(0), &big).is_ok());
    }

    #[test]
    fn any_bytes_are_read_without_a_panic() {
        let mut record = Vec::new();
        Record {
            seq: 7,
            meta: meta(7),
            payload: b"{}",
        }
        .encode(&mut record);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let mut bytes = MAGIC.to_vec();
            for _ in 0..(next() % 4) {
                bytes.extend_from_slice(&record);
            }
            for _ in 0..(next() % 64) {
                bytes.push(next() as u8);
            }
            if bytes.len() > MAGIC.len() {
                let at = MAGIC.len() + (next() as usize % (bytes.len() - MAGIC.len()));
                bytes[at] = next() as u8;
            }
            let cut = next() as usize % (bytes.len() + 1);
            let mut count = 0;
            if let Some(walked) = read_segment(&bytes[..cut], |_| count += 1) {
                assert!(walked.whole <= cut);
            }
        }
    }
}
