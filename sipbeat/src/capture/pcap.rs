//! pcap and pcapng captures, walked frame by frame.
//!
//! A regular file is mapped once and every [`Frame`] borrows the mapping, so
//! reading it copies no packet bytes. Standard input (`-`), FIFOs and gzip
//! or zstd files are streamed through a bounded window instead, by the same
//! walk. Both legacy pcap (either byte order,
//! micro- or nanosecond timestamps) and pcapng (several sections and
//! interfaces, any `if_tsresol`/`if_tsoffset`) are read through `pcap-parser`.
//! Frames whose link type sipbeat cannot decode are counted, not fatal.
//!
//! Damage is counted and read past: a record whose length cannot be (a
//! pcap caplen beyond any snap length, a pcapng block that does not parse)
//! is skipped up to the next place where records plausibly start again
//! (pcapng blocks carry their length, checked at both ends; pcap records
//! are found by a run of plausible headers), and the records and bytes
//! skipped are in [`FileStats`]. Only a file that ends inside a record is
//! "cut short". `if_tsresol` (powers of ten and of two) and `if_tsoffset`
//! (in the section's byte order, negative too) are read here, not by
//! pcap-parser, whose 0.17 takes binary resolutions for microseconds and
//! reads the offset little-endian.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use memmap2::{Advice, Mmap, UncheckedAdvice};
use pcap_parser::nom;
use pcap_parser::pcapng::{Block, EnhancedPacketBlock, InterfaceDescriptionBlock};
use pcap_parser::{LegacyPcapBlock, PcapHeader};

use super::{Frame, LinkType};

/// Why a capture file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    // The OS error is in the message and deliberately not a `source`: it
    // would be printed twice in the one-line error.
    #[error("cannot open {path}: {error}")]
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: not a pcap or pcapng file")]
    NotACapture { path: PathBuf },
}

/// What a walk over a file saw besides the frames it delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileStats {
    /// Frames handed to the callback.
    pub frames: u64,
    /// Frames skipped because their link type is not decoded.
    pub unsupported_link: u64,
    /// The file ended inside a record (a capture cut short); what came before was read.
    pub truncated: bool,
    /// Damaged places skipped (a record of impossible length, a block that
    /// does not parse, up to where records start again).
    pub damaged_records: u64,
    /// Bytes skipped with them.
    pub damaged_bytes: u64,
}

/// The largest record a capture can hold: libpcap's maximum snap length.
const MAX_RECORD: usize = 262_144;
/// Records in a row that must look right where reading resumes.
const RESYNC_RUN: usize = 3;

/// A capture file: memory-mapped when it is a regular file, else (standard
/// input, a FIFO, a compressed file) read as a stream a window at a time.
pub struct PcapFile {
    path: PathBuf,
    input: Input,
}

/// Where a walk's bytes come from.
enum Input {
    Mapped(Mapped),
    Stream(Stream),
}

const PCAP_MAGICS: [[u8; 4]; 6] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    // Modified (Kuznetzov) pcap.
    [0x34, 0xcd, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xcd, 0x34],
];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
/// gzip (RFC 1952) and zstd (RFC 8878) frames.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Whether `bytes` open with a pcap or pcapng magic number.
fn starts_like_a_capture(bytes: &[u8]) -> bool {
    bytes
        .get(..4)
        .is_some_and(|head| head == PCAPNG_MAGIC || PCAP_MAGICS.iter().any(|m| m == head))
}

/// The name standing for standard input.
pub const STDIN: &str = "-";

impl PcapFile {
    /// Opens `path` (`-`: standard input) and checks that it starts like a
    /// capture: a regular file is mapped; standard input, FIFOs and
    /// character devices are streamed; gzip and zstd files (found by their
    /// magic, whatever their name) are decompressed as a stream.
    pub fn open(path: impl AsRef<Path>) -> Result<PcapFile, CaptureError> {
        let path = path.as_ref().to_path_buf();
        let open_error = |error| CaptureError::Open {
            path: path.clone(),
            error,
        };
        if path.as_os_str() == STDIN {
            let stream = Stream::new(Box::new(std::io::stdin()));
            return PcapFile::checked(path, Input::Stream(stream));
        }
        let mut file = File::open(&path).map_err(open_error)?;
        let metadata = file.metadata().map_err(open_error)?;
        // Mapping a directory fails with "No such device": say what it is.
        if metadata.is_dir() {
            return Err(open_error(std::io::ErrorKind::IsADirectory.into()));
        }
        if !metadata.is_file() {
            let stream = Stream::new(Box::new(file));
            return PcapFile::checked(path, Input::Stream(stream));
        }
        let mut head = [0u8; 4];
        let head_len = read_up_to(&mut file, &mut head).map_err(open_error)?;
        let head = &head[..head_len];
        if head.starts_with(&GZIP_MAGIC) || head.starts_with(&ZSTD_MAGIC) {
            use std::io::Seek as _;
            file.rewind().map_err(open_error)?;
            let reader = std::io::BufReader::new(file);
            let decoder: Box<dyn Read + Send> = if head.starts_with(&GZIP_MAGIC) {
                Box::new(flate2::bufread::MultiGzDecoder::new(reader))
            } else {
                Box::new(zstd::stream::read::Decoder::with_buffer(reader).map_err(open_error)?)
            };
            return PcapFile::checked(path, Input::Stream(Stream::new(decoder)));
        }
        // SAFETY: the mapping is read-only and private to this process; a capture
        // file rewritten underneath us yields wrong bytes, never unsoundness in
        // code that only reads through bounds-checked slices.
        let map = unsafe { Mmap::map(&file) }.map_err(open_error)?;
        if !starts_like_a_capture(&map) {
            return Err(CaptureError::NotACapture { path });
        }
        // Read-ahead helps; failing to advise only costs speed.
        let _ = map.advise(Advice::Sequential);
        // Where the kernel can (Linux 6.x with large folios in the file
        // system, THP not `never`), a file read in from disk lands in the
        // page cache as 2 MiB folios that are mapped with one page-table
        // entry each instead of 512: reading the benchmark capture took
        // 6 % less CPU time, most of the kernel's share gone (benchmarks/history.md).
        // A file already cached in small pages is mapped as it is.
        let _ = map.advise(Advice::HugePage);
        Ok(PcapFile {
            path,
            input: Input::Mapped(Mapped::new(map)),
        })
    }

    /// A stream's first bytes checked for a capture's magic number.
    fn checked(path: PathBuf, mut input: Input) -> Result<PcapFile, CaptureError> {
        if let Input::Stream(stream) = &mut input {
            while stream.rest().len() < 4 {
                match stream.more() {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(error) => return Err(CaptureError::Open { path, error }),
                }
            }
            if !starts_like_a_capture(stream.rest()) {
                return Err(CaptureError::NotACapture { path });
            }
        }
        Ok(PcapFile { path, input })
    }

    /// A capture held in memory (fuzzing, and input that is no file), read
    /// like a mapped file: the bytes are copied once into an anonymous
    /// mapping. `label` names it in errors.
    pub fn from_bytes(label: impl Into<PathBuf>, bytes: &[u8]) -> Result<PcapFile, CaptureError> {
        let path = label.into();
        if !starts_like_a_capture(bytes) {
            return Err(CaptureError::NotACapture { path });
        }
        let mut map =
            memmap2::MmapMut::map_anon(bytes.len()).map_err(|error| CaptureError::Open {
                path: path.clone(),
                error,
            })?;
        map.copy_from_slice(bytes);
        let map = map.make_read_only().map_err(|error| CaptureError::Open {
            path: path.clone(),
            error,
        })?;
        Ok(PcapFile {
            path,
            input: Input::Mapped(Mapped::new(map)),
        })
    }

    /// A capture read from `reader` as a stream (tests of the streaming
    /// path; `label` names it in errors).
    pub fn from_reader(
        label: impl Into<PathBuf>,
        reader: impl Read + Send + 'static,
    ) -> Result<PcapFile, CaptureError> {
        PcapFile::checked(label.into(), Input::Stream(Stream::new(Box::new(reader))))
    }

    /// The file's path, as given to [`PcapFile::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Calls `on_frame` for every frame in file order. A stream is read
    /// once: a second walk over it sees nothing.
    pub fn for_each_frame(
        &mut self,
        mut on_frame: impl FnMut(Frame<'_>),
    ) -> Result<FileStats, CaptureError> {
        let path = &self.path;
        let read_error = |error| CaptureError::Open {
            path: path.clone(),
            error,
        };
        match &mut self.input {
            Input::Mapped(mapped) => walk(path, mapped, &mut on_frame),
            Input::Stream(stream) => walk(path, stream, &mut on_frame),
        }
        .map_err(|error| match error {
            WalkError::Io(error) => read_error(error),
            WalkError::Capture(error) => error,
        })
    }
}

/// Fills as much of `buf` as `reader` gives; the count read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// The bytes a walk reads: a window onto the capture that it consumes from
/// the front and can ask to grow.
trait Window {
    /// The bytes not consumed yet that are available now.
    fn rest(&self) -> &[u8];
    /// Consumes `n` bytes from the front of [`Window::rest`].
    fn advance(&mut self, n: usize);
    /// Makes more bytes available; false at the end of the input (or with
    /// the window at its largest).
    fn more(&mut self) -> std::io::Result<bool>;
}

/// A whole file, mapped: everything is available from the start.
struct Mapped {
    map: Mmap,
    at: usize,
    /// Bytes before this have been released from the process.
    released: usize,
    /// The page last prefetched after.
    page: usize,
}

impl Mapped {
    fn new(map: Mmap) -> Mapped {
        Mapped {
            map,
            at: 0,
            released: 0,
            page: usize::MAX,
        }
    }

    /// Drops the pages of everything read from this process once a whole
    /// window has been read, so a large capture does not count against the
    /// sensor's resident memory. A small window is also faster: reading
    /// the benchmark capture took 3–6 % less CPU with 4 MiB than with 32 MiB
    /// (the page-table walk of each release stays in cache).
    fn release_read(&mut self) {
        const WINDOW: usize = 4 << 20;
        let read = self.at & !(4096 - 1);
        if read >= self.released + WINDOW {
            // SAFETY: the mapping is private and read-only, so dropping pages
            // only makes later reads fetch them from the file again; and no
            // frame before `at` is borrowed any more (each callback has
            // returned).
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    UncheckedAdvice::DontNeed,
                    self.released,
                    read - self.released,
                )
            };
            self.released = read;
            // Map the window after the one being read in one call, rather
            // than a page fault every few pages when it is reached (less
            // CPU time reading the benchmark capture: benchmarks/history.md).
            // Failing (kernels before 5.14) only costs speed.
            let ahead = (read + WINDOW).min(self.map.len());
            let len = WINDOW.min(self.map.len() - ahead);
            if len > 0 {
                let _ = self.map.advise_range(Advice::PopulateRead, ahead, len);
            }
        }
    }

    /// On entering a new page of the mapping, asks for the first lines of
    /// the page after it: the hardware prefetcher follows a stream only
    /// within a page, so the first frame on each page would otherwise wait
    /// for memory.
    #[inline]
    fn prefetch_next_page(&mut self) {
        const PAGE: usize = 4096;
        if self.at / PAGE == self.page {
            return;
        }
        self.page = self.at / PAGE;
        #[cfg(target_arch = "x86_64")]
        if let Some(lines) = self
            .map
            .get((self.page + 1) * PAGE..(self.page + 1) * PAGE + 256)
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            for line in lines.chunks(64) {
                // SAFETY: a prefetch is only a hint; the address is inside
                // the mapping anyway.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
            }
        }
    }
}

impl Window for Mapped {
    #[inline]
    fn rest(&self) -> &[u8] {
        &self.map[self.at..]
    }

    #[inline]
    fn advance(&mut self, n: usize) {
        self.at += n;
        self.release_read();
        self.prefetch_next_page();
    }

    fn more(&mut self) -> std::io::Result<bool> {
        Ok(false)
    }
}

/// Input read as it comes, into a buffer that holds the record being
/// parsed and grows up to [`MAX_WINDOW`] for one that is large or damaged.
struct Stream {
    reader: Box<dyn Read + Send>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

/// Bytes read at a time.
const READ_CHUNK: usize = 1 << 20;
/// The most a stream buffers: room to judge the largest block believed
/// (two of them, for a resync run after it).
const MAX_WINDOW: usize = 2 * MAX_BLOCK;

impl Stream {
    fn new(reader: Box<dyn Read + Send>) -> Stream {
        Stream {
            reader,
            buf: Vec::new(),
            start: 0,
            end: 0,
            eof: false,
        }
    }
}

impl Window for Stream {
    fn rest(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn advance(&mut self, n: usize) {
        self.start += n;
    }

    fn more(&mut self) -> std::io::Result<bool> {
        let held = self.end - self.start;
        if self.eof || held >= MAX_WINDOW {
            return Ok(false);
        }
        // Move what is held to the front, and make room for a chunk.
        self.buf.copy_within(self.start..self.end, 0);
        self.start = 0;
        self.end = held;
        let want = (held + READ_CHUNK).min(MAX_WINDOW);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..want]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }
}

enum WalkError {
    Io(std::io::Error),
    Capture(CaptureError),
}

impl From<std::io::Error> for WalkError {
    fn from(error: std::io::Error) -> WalkError {
        WalkError::Io(error)
    }
}

fn walk(
    path: &Path,
    window: &mut impl Window,
    on_frame: &mut impl FnMut(Frame<'_>),
) -> Result<FileStats, WalkError> {
    while window.rest().len() < 4 && window.more()? {}
    if window.rest().starts_with(&PCAPNG_MAGIC) {
        walk_pcapng(window, on_frame)
    } else {
        walk_pcap(path, window, on_frame)
    }
}

/// What to do after looking at the front of the window.
enum Step {
    /// Consume this many bytes.
    Advance(usize),
    /// What is there does not parse: read more input and look again (a
    /// record may be incomplete only because the window ends inside it).
    Retry,
    /// The input ends inside a record.
    CutShort,
    /// Damage of this many bytes, skipped and counted.
    Damaged(usize),
}

/// A legacy pcap file: its header, then its records.
fn walk_pcap(
    path: &Path,
    window: &mut impl Window,
    on_frame: &mut impl FnMut(Frame<'_>),
) -> Result<FileStats, WalkError> {
    // The file header: 24 bytes.
    while window.rest().len() < 24 && window.more()? {}
    let (header_len, header) = match pcap_parser::parse_pcap_header(window.rest()) {
        Ok((next, header)) => (window.rest().len() - next.len(), header),
        Err(_) => {
            return Err(WalkError::Capture(CaptureError::NotACapture {
                path: path.to_path_buf(),
            }));
        }
    };
    window.advance(header_len);
    let link = LinkType::from_pcap(header.network.0);
    let parse_record = record_parser(&header);
    let fraction_to_ns: u64 = if header.is_nanosecond_precision() {
        1
    } else {
        1000
    };
    let shape = RecordShape {
        big_endian: header.is_bigendian(),
        header_len: if header.is_modified_format() { 24 } else { 16 },
        max_caplen: MAX_RECORD,
        max_fraction: if header.is_nanosecond_precision() {
            1_000_000_000
        } else {
            1_000_000
        },
    };
    let mut stats = FileStats::default();
    drive(window, &mut stats, |rest, exhausted, stats| {
        match parse_record(rest) {
            Ok((next, block)) if block.caplen as usize <= shape.max_caplen => {
                match link {
                    Some(link) => {
                        stats.frames += 1;
                        on_frame(Frame {
                            timestamp_ns: u64::from(block.ts_sec) * 1_000_000_000
                                + u64::from(block.ts_usec) * fraction_to_ns,
                            link,
                            data: block.data,
                            interface: None,
                        });
                    }
                    None => stats.unsupported_link += 1,
                }
                Step::Advance(rest.len() - next.len())
            }
            _ if !exhausted => Step::Retry,
            parsed => {
                let cut_at_tail = matches!(parsed, Err(nom::Err::Incomplete(_)))
                    && shape.caplen(rest).is_none_or(|len| len <= shape.max_caplen);
                if cut_at_tail {
                    Step::CutShort
                } else {
                    // Damaged: resume at the next run of plausible records.
                    Step::Damaged(resync(rest, |bytes| shape.plausible(bytes)))
                }
            }
        }
    })?;
    Ok(stats)
}

/// Walks the window record by record: `look` reads the record at the
/// front of what is there (told whether the window can grow no more) and
/// says what to do; a record that does not parse is looked at again with
/// more input before it is judged.
fn drive<W: Window>(
    window: &mut W,
    stats: &mut FileStats,
    mut look: impl FnMut(&[u8], bool, &mut FileStats) -> Step,
) -> std::io::Result<()> {
    // Whether the window can grow no more at this position.
    let mut exhausted = false;
    loop {
        if window.rest().is_empty() && !window.more()? {
            return Ok(());
        }
        let step = look(window.rest(), exhausted, stats);
        if !apply(window, step, stats, &mut exhausted)? {
            return Ok(());
        }
    }
}

/// Carries out `step`; false when the walk is over. `exhausted` says
/// whether the window could grow no more at the current position.
fn apply(
    window: &mut impl Window,
    step: Step,
    stats: &mut FileStats,
    exhausted: &mut bool,
) -> std::io::Result<bool> {
    match step {
        Step::Advance(n) => {
            window.advance(n);
            *exhausted = false;
        }
        Step::Retry => *exhausted = !window.more()?,
        Step::CutShort => {
            stats.truncated = true;
            return Ok(false);
        }
        Step::Damaged(skip) => {
            stats.damaged_records += 1;
            stats.damaged_bytes += skip as u64;
            window.advance(skip);
            *exhausted = false;
        }
    }
    Ok(true)
}

fn walk_pcapng(
    window: &mut impl Window,
    on_frame: &mut impl FnMut(Frame<'_>),
) -> Result<FileStats, WalkError> {
    let mut big_endian = false;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut stats = FileStats::default();
    drive(window, &mut stats, |rest, exhausted, stats| {
        let parsed = if big_endian {
            pcap_parser::pcapng::parse_block_be(rest)
        } else {
            pcap_parser::pcapng::parse_block_le(rest)
        };
        match parsed {
            Ok((next, block)) => {
                match block {
                    Block::SectionHeader(section) => {
                        big_endian = section.big_endian();
                        // Interface ids are per section.
                        interfaces.clear();
                    }
                    Block::InterfaceDescription(idb) => {
                        interfaces.push(Interface::new(&idb, big_endian))
                    }
                    Block::EnhancedPacket(epb) => {
                        let interface = interfaces.get(epb.if_id as usize);
                        match interface.and_then(|i| i.link.map(|link| (i, link))) {
                            Some((interface, link)) => {
                                stats.frames += 1;
                                on_frame(Frame {
                                    timestamp_ns: interface.timestamp_ns(&epb),
                                    link,
                                    data: epb_data(&epb),
                                    interface: interface.name.as_deref(),
                                });
                            }
                            None => stats.unsupported_link += 1,
                        }
                    }
                    Block::SimplePacket(spb) => {
                        // Simple packets belong to interface 0 and carry no timestamp.
                        match interfaces
                            .first()
                            .and_then(|i| i.link.map(|link| (i, link)))
                        {
                            Some((interface, link)) => {
                                stats.frames += 1;
                                let len = (spb.origlen as usize).min(spb.data.len());
                                on_frame(Frame {
                                    timestamp_ns: 0,
                                    link,
                                    data: &spb.data[..len],
                                    interface: interface.name.as_deref(),
                                });
                            }
                            None => stats.unsupported_link += 1,
                        }
                    }
                    _ => {}
                }
                Step::Advance(rest.len() - next.len())
            }
            Err(_) if !exhausted => Step::Retry,
            Err(error) => {
                let own_len = block_len(rest, big_endian);
                let cut_at_tail = matches!(error, nom::Err::Incomplete(_))
                    && own_len.is_none_or(|len| len > rest.len() && len <= MAX_BLOCK);
                if cut_at_tail {
                    Step::CutShort
                } else {
                    // A block that does not parse: its own length, when that
                    // is consistent, says where the next one starts; if not,
                    // the next run of well-formed blocks.
                    Step::Damaged(match own_len {
                        Some(len) if block_fits(rest, len, big_endian) => len,
                        _ => resync(rest, |bytes| plausible_block(bytes, big_endian)),
                    })
                }
            }
        }
    })?;
    Ok(stats)
}

type RecordParser =
    fn(&[u8]) -> nom::IResult<&[u8], LegacyPcapBlock<'_>, pcap_parser::PcapError<&[u8]>>;

fn record_parser(header: &PcapHeader) -> RecordParser {
    match (header.is_modified_format(), header.is_bigendian()) {
        (true, _) => pcap_parser::parse_pcap_frame_modified,
        (false, true) => pcap_parser::parse_pcap_frame_be,
        (false, false) => pcap_parser::parse_pcap_frame,
    }
}

/// How a legacy pcap file's record headers look, to tell a record from
/// damage.
struct RecordShape {
    big_endian: bool,
    header_len: usize,
    max_caplen: usize,
    max_fraction: u32,
}

impl RecordShape {
    fn u32_at(&self, bytes: &[u8], at: usize) -> Option<u32> {
        u32_in(bytes, at, self.big_endian)
    }

    /// The caplen of the record header at the start of `bytes`.
    fn caplen(&self, bytes: &[u8]) -> Option<usize> {
        self.u32_at(bytes, 8).map(|len| len as usize)
    }

    /// The length of the plausible record at the start of `bytes`.
    fn plausible(&self, bytes: &[u8]) -> Option<usize> {
        let fraction = self.u32_at(bytes, 4)?;
        let caplen = self.caplen(bytes)?;
        let origlen = self.u32_at(bytes, 12)? as usize;
        let len = self.header_len + caplen;
        (fraction < self.max_fraction
            && caplen <= self.max_caplen
            && caplen <= origlen
            && origlen <= MAX_RECORD.max(self.max_caplen) * 4
            && len <= bytes.len())
        .then_some(len)
    }
}

/// Bytes to skip from `damaged` to where [`RESYNC_RUN`] records in a row
/// (or well-formed ones up to the end of the file) look right, by
/// `record_len` (a plausible record's length at the start of its bytes);
/// all of it when nowhere.
fn resync(damaged: &[u8], record_len: impl Fn(&[u8]) -> Option<usize>) -> usize {
    let run_at = |start: usize| {
        let mut at = start;
        for _ in 0..RESYNC_RUN {
            if at == damaged.len() {
                return at > start;
            }
            match record_len(&damaged[at..]) {
                Some(len) => at += len,
                None => return false,
            }
        }
        true
    };
    (1..damaged.len())
        .find(|&start| run_at(start))
        .unwrap_or(damaged.len())
}

/// The largest pcapng block believed at the end of a file cut short.
const MAX_BLOCK: usize = 16 << 20;

/// Block types a pcapng file holds (SHB, IDB, PB, SPB, NRB, ISB, EPB, DSB,
/// and the custom ones).
const BLOCK_TYPES: [u32; 10] = [0x0a0d_0d0a, 1, 2, 3, 4, 5, 6, 0x0a, 0x0bad, 0x4000_0bad];

/// The 32-bit word at `at`, in the file's byte order.
fn u32_in(bytes: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let word: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(word)
    } else {
        u32::from_le_bytes(word)
    })
}

/// The block total length a pcapng block at `bytes` claims.
fn block_len(bytes: &[u8], big_endian: bool) -> Option<usize> {
    u32_in(bytes, 4, big_endian).map(|len| len as usize)
}

/// Whether a block of `len` bytes fits at `bytes`: a multiple of four, at
/// least the 12 bytes of type and both lengths, and the trailing length
/// equal to the leading one.
fn block_fits(bytes: &[u8], len: usize, big_endian: bool) -> bool {
    len >= 12
        && len.is_multiple_of(4)
        && len <= bytes.len()
        && u32_in(bytes, len - 4, big_endian) == Some(len as u32)
}

/// The length of the well-formed block of a known type at `bytes`.
fn plausible_block(bytes: &[u8], big_endian: bool) -> Option<usize> {
    let known = u32_in(bytes, 0, big_endian).is_some_and(|t| BLOCK_TYPES.contains(&t));
    block_len(bytes, big_endian).filter(|&len| known && block_fits(bytes, len, big_endian))
}

/// The per-interface facts needed to read an enhanced packet block.
struct Interface {
    link: Option<LinkType>,
    /// `if_name`, when given and UTF-8.
    name: Option<String>,
    /// Timestamp units per second (`if_tsresol`), 10^6 by default.
    units_per_second: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_seconds: i64,
}

/// pcapng option codes of an interface description block.
mod option {
    pub const IF_NAME: u16 = 2;
    pub const IF_TSRESOL: u16 = 9;
    pub const IF_TSOFFSET: u16 = 14;
}

impl Interface {
    fn new(idb: &InterfaceDescriptionBlock<'_>, big_endian: bool) -> Interface {
        let mut interface = Interface {
            link: LinkType::from_pcap(idb.linktype.0),
            name: None,
            units_per_second: 1_000_000,
            offset_seconds: 0,
        };
        for option in &idb.options {
            let value = option
                .value
                .get(..usize::from(option.len))
                .unwrap_or_default();
            match (option.code.0, value) {
                (option::IF_NAME, name) => {
                    // NUL-padded in some writers.
                    let name = name.split(|&b| b == 0).next().unwrap_or_default();
                    interface.name = std::str::from_utf8(name)
                        .ok()
                        .filter(|n| !n.is_empty())
                        .map(str::to_string);
                }
                (option::IF_TSRESOL, &[resolution]) => {
                    if let Some(units) = units_per_second(resolution) {
                        interface.units_per_second = units;
                    }
                }
                (option::IF_TSOFFSET, &[a, b, c, d, e, f, g, h]) => {
                    let bytes = [a, b, c, d, e, f, g, h];
                    interface.offset_seconds = if big_endian {
                        i64::from_be_bytes(bytes)
                    } else {
                        i64::from_le_bytes(bytes)
                    };
                }
                _ => {}
            }
        }
        interface
    }

    fn timestamp_ns(&self, epb: &EnhancedPacketBlock<'_>) -> u64 {
        let units = (u128::from(epb.ts_high) << 32) | u128::from(epb.ts_low);
        let ns = (units * 1_000_000_000 / u128::from(self.units_per_second)) as i128
            + i128::from(self.offset_seconds) * 1_000_000_000;
        u64::try_from(ns.max(0)).unwrap_or(u64::MAX)
    }
}

/// `if_tsresol`: units per second, 10^n, or 2^n with the high bit set
/// (pcapng §4.2); `None` for a resolution no u64 holds.
fn units_per_second(resolution: u8) -> Option<u64> {
    let exponent = u32::from(resolution & 0x7f);
    if resolution & 0x80 != 0 {
        1u64.checked_shl(exponent).filter(|_| exponent < 64)
    } else {
        10u64.checked_pow(exponent)
    }
}

fn epb_data<'a>(epb: &EnhancedPacketBlock<'a>) -> &'a [u8] {
    let len = (epb.caplen as usize).min(epb.data.len());
    &epb.data[..len]
}
