//! `queue.disk`: events kept on disk until Kafka has them.
//!
//! Every event the Kafka sink takes is appended here first, numbered in
//! order (its *seq*), and produced only once it is written; it leaves the
//! disk once the broker's delivery report for it (and every earlier one) is
//! in. So an event librdkafka holds is always on disk too: after a crash or
//! restart every event not known delivered is produced again, delivery is
//! at least once, and only events delivered but not yet recorded as such
//! come twice (counted as `recovered`). When librdkafka's memory queue is
//! full, or the broker is away, later events wait on disk and are produced
//! from it in order once there is room.
//!
//! The worker never waits for the disk: it encodes records into batches
//! (`segment`) and hands them, with reads, removals and the `acked` value,
//! to the queue's own I/O thread (`io`). A batch is handed over once it
//! holds 1 MiB, whenever the worker is idle, at every commit (every 4,096
//! events) and at every flush (twice a second). A written batch comes back
//! and its events are produced from memory when their turn comes (up to
//! 8 MiB of them; beyond, they are read back). A disk that falls behind by
//! more than 16 MiB of batches makes later events skip the disk (counted
//! `queue_skipped_slow_disk`): they go straight to librdkafka, as without a
//! disk queue, rather than stall capture.
//!
//! Bounded: the segment files together stay within `max_size`; an event
//! that does not fit is dropped (the newest are dropped, the queued ones
//! kept) and counted. An I/O error is logged once a period and counted;
//! events whose write failed are produced from memory all the same, without
//! a copy on disk (beyond 8 MiB of them: lost, counted). A worker's queue
//! holds at most 16 MiB of batches not yet handed over, 16 MiB handed over
//! (16 jobs), 8 MiB written and waiting to be produced, and a few spare
//! buffers: about 50 MiB.
//! At start, a torn tail is cut back to the last whole record.

mod io;
mod segment;

use std::collections::VecDeque;
use std::fs::{self, OpenOptions};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

use self::io::{Batch, Done, Io, Job};
use self::segment::{Bad, MAX_RECORD, decode, decode_trusted, read_acked, record_len};
pub use self::segment::{END_MARK, Record, SEGMENT_HEADER, Walked, read_segment, segment_header};
use super::EventMeta;
use crate::event::timestamp::now_ns;

crate::counters! {
    /// What the disk queue did.
    pub struct QueueStats {
        /// Events written to the disk queue.
        queue_written,
        /// Bytes written to the disk queue.
        queue_written_bytes,
        /// Events read back from disk to be produced (the broker was away or
        /// librdkafka's queue full when their turn came, or they were left
        /// from before a restart).
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
        /// Events lost because their write failed and memory could not
        /// hold them until librdkafka had room.
        queue_dropped_io,
        /// Events sent to librdkafka without a copy on disk because the
        /// disk was more than 16 MiB behind.
        queue_skipped_slow_disk,
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

/// Why an event was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue is at `max_size`: the event is dropped.
    Full,
    /// The disk is behind: the event goes on without the queue.
    SlowDisk,
}

/// One segment file.
#[derive(Debug)]
struct Segment {
    /// The first seq it holds (its name).
    first: u64,
    /// One past the last seq it holds.
    end: u64,
    /// Its length, the records not yet written included.
    bytes: u64,
}

/// Delivered seqs from `acked` on, one bit each; word 0 holds `acked`'s
/// 64-seq block.
#[derive(Debug, Default)]
struct Delivered {
    words: VecDeque<u64>,
}

impl Delivered {
    /// Marks `seq` (at or above `acked`) delivered; how far `acked` moves:
    /// over the delivered run it starts.
    fn mark(&mut self, acked: u64, seq: u64) -> u64 {
        let index = (seq - (acked & !63)) as usize;
        if self.words.len() <= index / 64 {
            self.words.resize(index / 64 + 1, 0);
        }
        self.words[index / 64] |= 1 << (index % 64);
        let mut moved = 0;
        while let Some(&word) = self.words.front() {
            let bit = (acked + moved) % 64;
            let run = u64::from((word >> bit).trailing_ones());
            moved += run;
            if bit + run < 64 {
                break;
            }
            self.words.pop_front();
        }
        moved
    }
}

/// A read asked of the I/O thread for the replay, and what it asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ask {
    segment: u64,
    offset: u64,
    len: u64,
    /// The segment's length (as handed over) when asked.
    size: u64,
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
    /// A write to the last segment failed: the next event starts another.
    broken: bool,
    /// Batches not yet handed to the I/O thread (the last one is being
    /// filled), and their bytes together.
    batches: VecDeque<Batch>,
    batched_bytes: usize,
    /// Emptied batch buffers back from the I/O thread.
    spare: Vec<Vec<u8>>,
    /// The seq the next event gets.
    head: u64,
    /// Every seq below this is delivered.
    acked: u64,
    /// The value last given to be saved in `acked`.
    acked_saved: u64,
    delivered: Delivered,
    /// Every seq below this is written (or its write failed): it may be
    /// produced.
    written: u64,
    /// Batches back from the I/O thread whose events are produced from
    /// memory when their turn comes, in seq order without gaps, and their
    /// bytes together.
    ready: VecDeque<Batch>,
    ready_bytes: usize,
    /// Seqs whose write failed and that memory could not hold: lost
    /// (counted), skipped by the cursor.
    lost: VecDeque<Range<u64>>,
    /// When events arrived: (first seq, wall clock ns) at the start of a
    /// batch, a second apart at least; the first holds `acked`.
    arrivals: VecDeque<(u64, u64)>,
    /// The next seq to produce, and where its record starts on disk when
    /// known.
    cursor: u64,
    cursor_offset: Option<u64>,
    /// Records to produce, from the cursor on: read from disk, or a ready
    /// batch.
    replay: Vec<u8>,
    replay_at: usize,
    /// Records before this offset in `replay` are known whole (checked, or
    /// from memory).
    checked_to: usize,
    /// Whether `replay` was read from disk.
    replay_from_disk: bool,
    /// A buffer for the next read.
    read_spare: Vec<u8>,
    /// Bytes the next read asks for at least: the record at its offset
    /// is longer than [`READ_CHUNK`].
    read_at_least: u64,
    /// The read out for the replay, and one come back.
    asked: Option<Ask>,
    answered: Option<(Ask, std::io::Result<Vec<u8>>)>,
    /// Delivered segments to remove once the I/O thread has room.
    doomed: VecDeque<u64>,
    io: Io,
    stats: QueueStats,
    log: crate::log::Limiter,
}

/// Bytes of a batch before it is handed to the I/O thread (bigger batches
/// wake it less often: 1 MiB cost 0.5 s less CPU than 256 KiB over
/// bench-kafka's 1.4 GB; 4 MiB cost more).
const WRITE_BATCH: usize = 1 << 20;
/// Bytes of batches not yet handed over (the I/O thread is behind) above
/// which events skip the disk.
const BEHIND_LIMIT: usize = 16 << 20;
/// Bytes of written batches kept to produce from memory.
const READY_LIMIT: usize = 8 << 20;
/// Bytes read from a segment at a time when replaying (more when one
/// record is longer).
const READ_CHUNK: u64 = 1 << 20;
/// How long closing waits for the I/O thread to write what it was given.
const CLOSE_PATIENCE: Duration = Duration::from_secs(30);

impl DiskQueue {
    /// Opens (or creates) the queue in `dir`; what an earlier run left
    /// undelivered is produced first.
    pub fn open(config: &DiskQueueConfig, dir: &Path) -> std::io::Result<DiskQueue> {
        fs::create_dir_all(dir)?;
        let acked = read_acked(&dir.join("acked")).unwrap_or(0);
        let mut queue = DiskQueue {
            dir: dir.to_path_buf(),
            max_size: config.max_size.0,
            segment_size: config.segment_bytes(),
            segments: VecDeque::new(),
            total_bytes: 0,
            broken: false,
            batches: VecDeque::new(),
            batched_bytes: 0,
            spare: Vec::new(),
            head: 0,
            acked,
            acked_saved: acked,
            delivered: Delivered::default(),
            written: 0,
            ready: VecDeque::new(),
            ready_bytes: 0,
            lost: VecDeque::new(),
            arrivals: VecDeque::new(),
            cursor: acked,
            cursor_offset: None,
            replay: Vec::new(),
            replay_at: 0,
            checked_to: 0,
            replay_from_disk: false,
            read_spare: Vec::new(),
            read_at_least: 0,
            asked: None,
            answered: None,
            doomed: VecDeque::new(),
            io: Io::start(dir)?,
            stats: QueueStats::default(),
            log: crate::log::Limiter::default(),
        };
        let mut names: Vec<(u64, PathBuf)> = fs::read_dir(dir)?
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                if name.starts_with("spare-") {
                    // The I/O thread keeps its spares from this run on.
                    let _ = fs::remove_file(entry.path());
                    return None;
                }
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
            queue.stats.queue_torn += u64::from(walked.torn);
            if index + 1 == count && bytes.len() > walked.whole {
                // Appending goes on after the last whole record: what
                // follows (a torn record, an end mark, an earlier use's
                // records) goes.
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(walked.whole as u64)?;
            }
            if end <= acked {
                fs::remove_file(&path)?;
                continue;
            }
            queue.stats.queue_recovered += left;
            queue.total_bytes += walked.whole as u64;
            queue.segments.push_back(Segment {
                first,
                end,
                bytes: walked.whole as u64,
            });
        }
        queue.head = queue.segments.back().map_or(acked, |s| s.end).max(acked);
        queue.written = queue.head;
        // What an earlier run left counts as arrived now.
        queue.arrivals.push_back((acked, now_ns()));
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

    /// Seconds since the oldest undelivered event was appended (at most a
    /// second more).
    pub fn oldest_age_secs(&self) -> u64 {
        if self.depth() == 0 {
            return 0;
        }
        self.arrivals
            .front()
            .map_or(0, |&(_, ns)| now_ns().saturating_sub(ns) / 1_000_000_000)
    }

    /// Whether every queued event has been handed to librdkafka.
    pub fn caught_up(&self) -> bool {
        self.cursor >= self.head
    }

    /// Appends an event; its seq, or why it was not (counted).
    pub fn append(&mut self, meta: &EventMeta<'_>, payload: &[u8]) -> Result<u64, Refused> {
        let seq = self.head;
        let len = Record::encoded_len(meta, payload) as u64;
        if self.bytes() + len + SEGMENT_HEADER as u64 > self.max_size {
            self.stats.queue_dropped_full += 1;
            return Err(Refused::Full);
        }
        if self.batched_bytes >= BEHIND_LIMIT {
            self.write_pending();
            if self.batched_bytes >= BEHIND_LIMIT {
                self.stats.queue_skipped_slow_disk += 1;
                return Err(Refused::SlowDisk);
            }
        }
        let full = self.broken
            || self.segments.back().is_none_or(|s| {
                s.bytes > SEGMENT_HEADER as u64 && s.bytes + len > self.segment_size
            });
        if full {
            self.new_segment();
        }
        let last = self.segments.back_mut().expect("a segment");
        let (segment, offset) = (last.first, last.bytes);
        last.end = seq + 1;
        last.bytes += len;
        self.total_bytes += len;
        // A batch holds one segment's records, up to WRITE_BATCH bytes (or
        // one bigger record).
        let fits = |b: &Batch| b.segment == segment && b.bytes.len() + len as usize <= WRITE_BATCH;
        if !self.batches.back().is_some_and(fits) {
            let now = now_ns();
            if self
                .arrivals
                .back()
                .is_none_or(|&(_, ns)| now.saturating_sub(ns) >= 1_000_000_000)
            {
                self.arrivals.push_back((seq, now));
                self.forget_arrivals();
            }
            self.write_pending();
            let bytes = self
                .spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(WRITE_BATCH));
            self.batches.push_back(Batch {
                segment,
                // Every segment but the one reopened at start is made by
                // its first batch.
                fresh: segment == seq,
                offset,
                seqs: seq..seq,
                bytes,
            });
        }
        let fill = self.batches.back_mut().expect("a batch");
        let before = fill.bytes.len();
        Record {
            seq,
            meta: *meta,
            payload,
        }
        .encode(&mut fill.bytes);
        debug_assert_eq!((fill.bytes.len() - before) as u64, len);
        fill.seqs.end = seq + 1;
        self.batched_bytes += len as usize;
        self.head += 1;
        self.stats.queue_written += 1;
        self.stats.queue_written_bytes += len;
        Ok(seq)
    }

    /// Starts a segment at `head` (its file is made by its first batch).
    fn new_segment(&mut self) {
        self.broken = false;
        self.total_bytes += SEGMENT_HEADER as u64;
        self.segments.push_back(Segment {
            first: self.head,
            end: self.head,
            bytes: SEGMENT_HEADER as u64,
        });
    }

    /// Hands the batches to the I/O thread, as many as it has room for,
    /// and takes in what it has done first (answers bring buffers back).
    pub fn write_pending(&mut self) {
        self.poll_io();
        while let Some(batch) = self.batches.pop_front() {
            let len = batch.bytes.len();
            match self.io.offer(Job::Write(batch)) {
                Ok(()) => self.batched_bytes -= len,
                Err(Job::Write(batch)) => {
                    self.batches.push_front(batch);
                    return;
                }
                Err(_) => unreachable!("the job offered comes back"),
            }
        }
    }

    /// The length of segment `first` (`bytes` long) as far as handed to
    /// the I/O thread: what a read asked now finds.
    fn handed_bytes(&self, first: u64, bytes: u64) -> u64 {
        let waiting = self.batches.iter().filter(|b| b.segment == first);
        bytes - waiting.map(|b| b.bytes.len() as u64).sum::<u64>()
    }

    /// Takes in what the I/O thread has done.
    fn poll_io(&mut self) {
        while let Some(done) = self.io.poll() {
            self.answer(done);
        }
    }

    fn answer(&mut self, done: Done) {
        match done {
            Done::Written(batch, error) => {
                self.written = self.written.max(batch.seqs.end);
                if let Some(error) = &error {
                    // Not on disk: produced from memory all the same, if
                    // it can wait there. The queue goes on in a new segment.
                    if self
                        .segments
                        .back()
                        .is_some_and(|s| s.first == batch.segment)
                    {
                        self.broken = true;
                    }
                    self.io_error("write", error);
                }
                self.keep_ready(batch, error.is_none());
            }
            Done::Read {
                segment,
                offset,
                bytes,
            } => {
                if let Some(ask) = self
                    .asked
                    .take_if(|a| (a.segment, a.offset) == (segment, offset))
                {
                    self.answered = Some((ask, bytes));
                }
            }
            Done::Removed(Ok(())) | Done::SavedAcked(Ok(())) => {}
            Done::Removed(Err(error)) => self.io_error("remove", &error),
            Done::SavedAcked(Err(error)) => {
                // `acked` is written again at the next commit.
                self.acked_saved = u64::MAX;
                self.io_error("write", &error);
            }
        }
    }

    /// Keeps a batch back from the I/O thread to produce its events from
    /// memory when their turn comes, if it follows the ones kept and there
    /// is room; else they are read back from disk then — or, if its write
    /// failed, lost (counted).
    fn keep_ready(&mut self, batch: Batch, on_disk: bool) {
        let len = batch.bytes.len();
        let follows = self
            .ready
            .back()
            .is_none_or(|last| last.seqs.end == batch.seqs.start);
        if batch.seqs.end > self.cursor && follows && self.ready_bytes + len <= READY_LIMIT {
            self.ready_bytes += len;
            self.ready.push_back(batch);
            return;
        }
        if !on_disk {
            let lost = self.cursor.max(batch.seqs.start)..batch.seqs.end;
            self.stats.queue_dropped_io += lost.end - lost.start;
            for seq in lost.clone() {
                self.acknowledge(seq);
            }
            self.lost.push_back(lost);
        }
        self.keep_spare(batch.bytes);
    }

    fn keep_spare(&mut self, mut bytes: Vec<u8>) {
        bytes.clear();
        // A few, of ordinary size (a batch holding a huge record is let go).
        if self.spare.len() < 4 && bytes.capacity() <= 2 * WRITE_BATCH {
            self.spare.push(bytes);
        }
    }

    /// Waits until the I/O thread has done everything asked of it, at most
    /// until `deadline`; whether anything was outstanding.
    pub fn wait_io(&mut self, deadline: Instant) -> bool {
        let waited = self.io.outstanding() > 0;
        while let Some(done) = self.io.wait(deadline) {
            self.answer(done);
        }
        waited
    }

    /// The next record to produce, written, and its length; `None` when
    /// caught up, or while its write or read is out (ask again).
    pub fn next_unsent(&mut self) -> Option<(Record<'_>, u64)> {
        if self.caught_up() {
            return None;
        }
        if self.replay_at >= self.checked_to {
            // Each record read back is checked once.
            let checked = decode(&self.replay[self.replay_at..]).map(|(_, len)| len);
            let len = match checked {
                Ok(len) => len,
                Err(_) => {
                    self.poll_io();
                    self.fill_replay();
                    decode(&self.replay[self.replay_at..]).ok()?.1
                }
            };
            self.checked_to = self.checked_to.max(self.replay_at + len);
        }
        let (record, len) = decode_trusted(&self.replay[self.replay_at..]).ok()?;
        Some((record, len as u64))
    }

    /// The record [`DiskQueue::next_unsent`] gave was handed to librdkafka.
    pub fn produced(&mut self, seq: u64, len: u64) {
        self.replay_at += len as usize;
        if self.replay_from_disk {
            self.stats.queue_replayed += 1;
            self.stats.queue_replayed_bytes += len;
        }
        self.cursor = seq + 1;
        self.cursor_offset = self.cursor_offset.map(|offset| offset + len);
    }

    /// Takes records from the cursor on into the replay buffer: a batch
    /// back from the I/O thread, or a read asked of it whose answer is
    /// taken at a later call.
    fn fill_replay(&mut self) {
        self.replay.clear();
        self.replay_at = 0;
        self.checked_to = 0;
        while !self.caught_up() {
            if self.cursor >= self.written {
                // Its write is not done yet.
                return;
            }
            if self.replay_ready() {
                return;
            }
            if let Some(lost) = self.lost.front()
                && lost.start <= self.cursor
            {
                self.cursor = self.cursor.max(lost.end);
                self.cursor_offset = None;
                self.lost.pop_front();
                continue;
            }
            let Some(segment) = self.segments.iter().find(|s| self.cursor < s.end) else {
                self.cursor = self.head;
                return;
            };
            let (first, end) = (segment.first, segment.end);
            let size = self.handed_bytes(first, segment.bytes);
            if self.cursor < first {
                // Seqs lost to a failed write.
                self.cursor = first;
                self.cursor_offset = None;
            }
            // An offset known is into the cursor's segment, unless the
            // cursor is at that segment's start.
            let offset = match self.cursor_offset {
                Some(offset) if self.cursor != first => offset,
                _ => SEGMENT_HEADER as u64,
            };
            if offset >= size {
                self.cursor = end;
                self.cursor_offset = None;
                continue;
            }
            let (ask, chunk) = match self.answered.take() {
                // What was read then (more may have been written since).
                Some((ask, bytes)) if (ask.segment, ask.offset) == (first, offset) => (ask, bytes),
                _ => {
                    self.ask_read(first, offset, size);
                    return;
                }
            };
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    self.io_error("read", &error);
                    self.cursor = end;
                    self.cursor_offset = None;
                    continue;
                }
            };
            let reaches_end = (chunk.len() as u64) < ask.len || offset + ask.len >= ask.size;
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
                    self.replay_from_disk = true;
                    self.cursor_offset = Some(offset + at as u64);
                    self.read_at_least = 0;
                    // The next chunk is read while this one is produced.
                    let next = offset + (at + segment::whole_records(&chunk[at..])) as u64;
                    self.read_spare = std::mem::replace(&mut self.replay, chunk);
                    self.replay_at = at;
                    self.ask_read(first, next, size);
                    return;
                }
                // A record runs past this chunk: read on from it, all of it.
                Err(Bad::Short) if !reaches_end => {
                    let record = record_len(&chunk[at..]).unwrap_or(0);
                    self.read_at_least = record.min(4 + MAX_RECORD) as u64;
                    self.cursor_offset = Some(offset + at as u64);
                    self.read_spare = chunk;
                }
                // The segment ends here (records counted never reached the
                // disk: a failed write).
                Err(Bad::Short) => {
                    self.cursor = end;
                    self.cursor_offset = None;
                }
                Err(Bad::Damaged) => {
                    self.stats.queue_corrupt_bytes += (ask.size - offset - at as u64).max(1);
                    self.cursor = end;
                    self.cursor_offset = None;
                }
            }
        }
    }

    /// Asks the I/O thread for the bytes of segment `first` from `offset`
    /// on (`size` of them handed over), unless a read is out already.
    fn ask_read(&mut self, first: u64, offset: u64, size: u64) {
        if self.asked.is_some() || offset >= size {
            return;
        }
        let ask = Ask {
            segment: first,
            offset,
            len: (size - offset).min(READ_CHUNK.max(self.read_at_least)),
            size,
        };
        let job = Job::Read {
            segment: ask.segment,
            offset: ask.offset,
            len: ask.len,
            buffer: std::mem::take(&mut self.read_spare),
        };
        match self.io.offer(job) {
            Ok(()) => self.asked = Some(ask),
            Err(Job::Read { buffer, .. }) => self.read_spare = buffer,
            Err(_) => unreachable!("the job offered comes back"),
        }
    }

    /// Takes the ready batch holding the cursor as the replay buffer, if
    /// there is one (those before it are produced already).
    fn replay_ready(&mut self) -> bool {
        let cursor = self.cursor;
        let batch = loop {
            let Some(batch) = self.ready.pop_front() else {
                return false;
            };
            if batch.seqs.start > cursor {
                self.ready.push_front(batch);
                return false;
            }
            self.ready_bytes -= batch.bytes.len();
            if batch.seqs.end > cursor {
                break batch;
            }
            self.keep_spare(batch.bytes);
        };
        let mut at = 0;
        while let Ok((record, len)) = decode_trusted(&batch.bytes[at..])
            && record.seq < cursor
        {
            at += len;
        }
        let old = std::mem::replace(&mut self.replay, batch.bytes);
        if self.read_spare.capacity() == 0 {
            self.read_spare = old;
        } else {
            self.keep_spare(old);
        }
        self.replay_at = at;
        self.checked_to = self.replay.len();
        self.replay_from_disk = false;
        self.cursor_offset = Some(batch.offset + at as u64);
        true
    }

    /// `seq` is delivered (or failed for good: it never will be).
    pub fn acknowledge(&mut self, seq: u64) {
        if seq < self.acked || seq >= self.head {
            return;
        }
        let run = self.delivered.mark(self.acked, seq);
        self.acked += run;
        self.stats.queue_acknowledged += run;
        self.forget_arrivals();
    }

    /// Drops the arrival times of delivered events but the one `acked`'s
    /// arrival is known by.
    fn forget_arrivals(&mut self) {
        while self.arrivals.len() > 1 && self.arrivals[1].0 <= self.acked {
            self.arrivals.pop_front();
        }
    }

    /// Hands over what waits, removes delivered segments and records how
    /// far delivery got (at every flush, and every 4,096 events).
    pub fn commit(&mut self) {
        self.poll_io();
        // The last segment stays open for appending, delivered or not.
        while self.segments.len() > 1 && self.segments[0].end <= self.acked {
            let segment = self.segments.pop_front().expect("a segment");
            self.total_bytes -= segment.bytes;
            // Its batches not yet written need not be.
            while self
                .batches
                .front()
                .is_some_and(|b| b.segment == segment.first)
            {
                let batch = self.batches.pop_front().expect("a batch");
                self.batched_bytes -= batch.bytes.len();
                self.keep_spare(batch.bytes);
            }
            self.doomed.push_back(segment.first);
        }
        self.write_pending();
        // Removals after the writes: a segment is never made again.
        while let Some(&segment) = self.doomed.front()
            && self.io.offer(Job::Remove { segment }).is_ok()
        {
            self.doomed.pop_front();
        }
        if self.acked != self.acked_saved && self.io.offer(Job::SaveAcked(self.acked)).is_ok() {
            self.acked_saved = self.acked;
        }
    }

    /// Everything handed to the I/O thread and written, waiting until
    /// `deadline`: the end of a run.
    fn close(&mut self, deadline: Instant) {
        self.commit();
        while let Some(batch) = self.batches.pop_front() {
            if let Err(Job::Write(batch)) = self.io.give(Job::Write(batch), deadline) {
                self.batches.push_front(batch);
                break;
            }
        }
        if self.acked != self.acked_saved {
            let _ = self.io.give(Job::SaveAcked(self.acked), deadline);
        }
        self.io.close();
        self.wait_io(deadline);
        if !self.batches.is_empty() || self.io.outstanding() > 0 {
            crate::log::warn(&format!(
                "disk queue {}: the disk did not take the last events within {}s",
                self.dir.display(),
                CLOSE_PATIENCE.as_secs()
            ));
        }
    }

    fn io_error(&mut self, what: &str, error: &std::io::Error) {
        self.stats.queue_io_errors += 1;
        self.log.warn_as(
            what,
            &format!("disk queue {}: {what}: {error}", self.dir.display()),
        );
    }

    #[cfg(test)]
    fn last_segment_path(&self) -> PathBuf {
        let last = self.segments.back().expect("a segment");
        self.dir.join(segment::segment_name(last.first))
    }
}

impl Drop for DiskQueue {
    fn drop(&mut self) {
        self.close(Instant::now() + CLOSE_PATIENCE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Dataset;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let path =
                std::env::temp_dir().join(format!("sipbeat-queue-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            Dir(path)
        }
    }

    impl Dir {
        /// The queue in this directory, opened as a start would.
        fn open(&self, cfg: &DiskQueueConfig) -> DiskQueue {
            DiskQueue::open(cfg, &self.0).unwrap()
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
            sip_type: Some(if i.is_multiple_of(2) {
                crate::sip::SipType::Request
            } else {
                crate::sip::SipType::Response
            }),
            timestamp_ns: 1_000 + i,
            dataset: if i.is_multiple_of(5) {
                Dataset::Call
            } else {
                Dataset::Sip
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
        let mut queue = dir.open(cfg);
        for i in 0..count {
            queue.append(&meta(i), &payload(i)).unwrap();
        }
        queue.commit();
        queue.last_segment_path()
    }

    /// Every record from the cursor on, written first, checked against
    /// what was appended; their seqs.
    fn drain(queue: &mut DiskQueue) -> Vec<u64> {
        drain_with(queue, |record| {
            assert_eq!(record.meta, meta(record.seq), "seq {}", record.seq);
            assert_eq!(record.payload, payload(record.seq), "seq {}", record.seq);
        })
    }

    fn drain_with(queue: &mut DiskQueue, mut check: impl FnMut(&Record<'_>)) -> Vec<u64> {
        let mut seqs = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !queue.caught_up() {
            if let Some((record, len)) = queue.next_unsent() {
                check(&record);
                let seq = record.seq;
                queue.produced(seq, len);
                seqs.push(seq);
                continue;
            }
            assert!(Instant::now() < deadline, "stuck after {seqs:?}");
            // Its write or read is out: hand over what waits, and take in
            // what the I/O thread did.
            queue.write_pending();
            queue.wait_io(Instant::now() + Duration::from_millis(100));
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
        let mut queue = dir.open(&cfg);
        // The first ten go to Kafka; the broker confirms five.
        for i in 0..10 {
            let seq = queue.append(&meta(i), &payload(i)).unwrap();
            assert_eq!(seq, i);
        }
        assert_eq!(drain(&mut queue), (0..10).collect::<Vec<_>>());
        assert!(queue.caught_up());
        for seq in [0, 1, 2, 4, 3] {
            queue.acknowledge(seq);
        }
        // Then librdkafka is full: the rest wait.
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
        let mut queue = dir.open(&cfg);
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
        let mut queue = dir.open(&cfg);
        assert_eq!(queue.stats().queue_recovered, 0);
        assert!(queue.next_unsent().is_none());
        assert_eq!(queue.append(&meta(1001), &payload(1001)), Ok(1001));
    }

    /// A queue whose first segment's file is a FIFO nobody reads yet: the
    /// I/O thread blocks opening it, as on a disk that does not answer.
    fn stalled(name: &str) -> (Dir, DiskQueue, PathBuf) {
        let dir = Dir::new(name);
        let queue = dir.open(&config(1 << 30, 64 << 20));
        let fifo = dir.0.join(segment::segment_name(0));
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success(), "mkfifo");
        (dir, queue, fifo)
    }

    #[test]
    fn nothing_is_produced_before_it_is_written() {
        // The first batch is handed over but not written.
        let (_dir, mut queue, fifo) = stalled("unwritten");
        for i in 0..10 {
            queue.append(&meta(i), &payload(i)).unwrap();
        }
        queue.write_pending();
        assert!(queue.batches.is_empty(), "handed over");
        std::thread::sleep(Duration::from_millis(200));
        // Not on disk: not to be produced, or a crash now would lose them.
        assert!(queue.next_unsent().is_none());
        assert!(!queue.caught_up());
        // The disk answers (a pipe cannot be written at an offset: the
        // write fails, counted): now they go, from memory, none lost.
        let reader = std::thread::spawn(move || fs::read(&fifo).unwrap().len());
        assert_eq!(drain(&mut queue), (0..10).collect::<Vec<_>>());
        reader.join().unwrap();
        assert_eq!(queue.stats().queue_io_errors, 1);
        assert_eq!(queue.stats().queue_dropped_io, 0);
        // Written to a working segment: produced as soon as the write is
        // answered, from memory (nothing read back).
        for i in 10..20 {
            queue.append(&meta(i), &payload(i)).unwrap();
        }
        assert!(queue.next_unsent().is_none(), "not handed over yet");
        assert_eq!(drain(&mut queue), (10..20).collect::<Vec<_>>());
        assert_eq!(queue.stats().queue_replayed, 0);
    }

    #[test]
    fn the_oldest_age_is_the_oldest_undelivered_events() {
        let dir = Dir::new("age");
        let mut queue = dir.open(&config(64 << 20, 64 << 10));
        assert_eq!(queue.oldest_age_secs(), 0, "empty");
        std::thread::sleep(Duration::from_millis(1100));
        // A queue open for a while: its first event is new all the same.
        queue.append(&meta(0), &payload(0)).unwrap();
        assert_eq!(queue.oldest_age_secs(), 0);
        queue.write_pending();
        std::thread::sleep(Duration::from_millis(1100));
        queue.append(&meta(1), &payload(1)).unwrap();
        assert_eq!(queue.oldest_age_secs(), 1, "event 0 waits");
        // Event 0 delivered: event 1 is the oldest, just appended.
        queue.acknowledge(0);
        assert_eq!(queue.oldest_age_secs(), 0);
        queue.acknowledge(1);
        assert_eq!(queue.arrivals.len(), 1, "what is delivered is forgotten");
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
        let mut queue = dir.open(&cfg);
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
        let queue = dir.open(&cfg);
        assert_eq!(queue.stats().queue_recovered, 19);
        assert!(queue.stats().queue_corrupt_bytes > 0);
    }

    #[test]
    fn at_max_size_the_newest_are_dropped_and_counted() {
        let dir = Dir::new("full");
        let cfg = config(1 << 20, 64 << 10);
        let mut queue = dir.open(&cfg);
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
    fn a_stalled_disk_never_stalls_the_worker() {
        let (_dir, mut queue, fifo) = stalled("stall");
        let event = vec![b'x'; 4000];
        let (mut queued, mut skipped) = (0, 0);
        for i in 0..20_000 {
            match queue.append(&meta(i), &event) {
                Ok(_) => queued += 1,
                Err(Refused::SlowDisk) => skipped += 1,
                Err(Refused::Full) => panic!("not full"),
            }
        }
        // The worker went on: what the disk did not take is counted, and
        // what waits for it in memory is bounded.
        assert!(
            skipped > 0 && queued > 0,
            "{queued} queued, {skipped} skipped"
        );
        assert_eq!(queue.stats().queue_skipped_slow_disk, skipped);
        assert!(queue.batched_bytes <= BEHIND_LIMIT + WRITE_BATCH);
        // The disk answers again (a pipe cannot be written at an offset:
        // that segment's writes fail, counted): what memory holds is
        // produced, the rest is counted lost, and nothing else is missing.
        let reader = std::thread::spawn(move || fs::read(&fifo).unwrap().len());
        let produced = drain_with(&mut queue, |record| assert_eq!(record.payload, event));
        reader.join().unwrap();
        assert!(queue.stats().queue_io_errors >= 1);
        assert_eq!(queue.io.outstanding(), 0);
        let lost = queue.stats().queue_dropped_io;
        assert_eq!(produced.len() as u64 + lost, queued, "{lost} lost");
        assert!(produced.windows(2).all(|w| w[0] < w[1]), "in order");
    }

    #[test]
    fn a_failed_write_is_counted_and_the_queue_goes_on() {
        let dir = Dir::new("fail");
        let cfg = config(64 << 20, 64 << 10);
        let mut queue = dir.open(&cfg);
        // A directory where the first segment's file would be.
        fs::create_dir(dir.0.join(segment::segment_name(0))).unwrap();
        for i in 0..20 {
            queue.append(&meta(i), &payload(i)).unwrap();
        }
        // Not on disk, but in memory: produced all the same.
        assert_eq!(drain(&mut queue), (0..20).collect::<Vec<_>>());
        assert_eq!(queue.stats().queue_io_errors, 1);
        assert_eq!(queue.stats().queue_dropped_io, 0);
        for seq in 0..20 {
            queue.acknowledge(seq);
        }
        assert_eq!(queue.depth(), 0);
        // The next event starts a segment of its own, which works.
        assert_eq!(queue.append(&meta(20), &payload(20)), Ok(20));
        queue.commit();
        drop(queue);
        let mut queue = dir.open(&cfg);
        assert_eq!(queue.stats().queue_recovered, 1);
        assert_eq!(drain(&mut queue), [20]);
    }

    #[test]
    fn reused_files_give_back_only_their_own_records() {
        let dir = Dir::new("reuse");
        let cfg = config(64 << 20, 64 << 10);
        let mut queue = dir.open(&cfg);
        // Many segments, delivered as they go but the last 100 events.
        for i in 0..3000 {
            queue.append(&meta(i), &payload(i)).unwrap();
            if i % 100 == 99 {
                for seq in drain(&mut queue) {
                    if seq < 2900 {
                        queue.acknowledge(seq);
                    }
                }
                queue.commit();
            }
        }
        queue.wait_io(Instant::now() + Duration::from_secs(10));
        // A reused file: the records of its earlier use after the end mark.
        let reused = fs::read_dir(&dir.0)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
            .any(|entry| {
                let bytes = fs::read(entry.path()).unwrap();
                let walked = read_segment(&bytes, |_| ()).unwrap();
                assert!(!walked.torn && walked.corrupt_bytes == 0);
                bytes.len() > walked.whole + END_MARK.len()
            });
        assert!(reused, "a segment file was reused");
        drop(queue);
        let mut queue = dir.open(&cfg);
        let stats = queue.stats();
        assert_eq!(stats.queue_recovered, 100);
        assert_eq!((stats.queue_torn, stats.queue_corrupt_bytes), (0, 0));
        assert_eq!(drain(&mut queue), (2900..3000).collect::<Vec<_>>());
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
            let mut bytes = segment_header(0).to_vec();
            for _ in 0..(next() % 4) {
                bytes.extend_from_slice(&record);
            }
            for _ in 0..(next() % 64) {
                bytes.push(next() as u8);
            }
            if bytes.len() > SEGMENT_HEADER {
                let at = SEGMENT_HEADER + (next() as usize % (bytes.len() - SEGMENT_HEADER));
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
