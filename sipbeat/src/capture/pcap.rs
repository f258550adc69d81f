//! pcap and pcapng files, memory-mapped and walked frame by frame.
//!
//! The file is mapped once and every [`Frame`] borrows the mapping, so reading
//! a capture copies no packet bytes. Both legacy pcap (either byte order,
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

/// A memory-mapped capture file.
pub struct PcapFile {
    path: PathBuf,
    map: Mmap,
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

/// Whether `bytes` open with a pcap or pcapng magic number.
fn starts_like_a_capture(bytes: &[u8]) -> bool {
    bytes
        .get(..4)
        .is_some_and(|head| head == PCAPNG_MAGIC || PCAP_MAGICS.iter().any(|m| m == head))
}

impl PcapFile {
    /// Maps `path` and checks that it starts like a capture file.
    pub fn open(path: impl AsRef<Path>) -> Result<PcapFile, CaptureError> {
        let path = path.as_ref().to_path_buf();
        let open_error = |error| CaptureError::Open {
            path: path.clone(),
            error,
        };
        let file = File::open(&path).map_err(open_error)?;
        // Mapping a directory fails with "No such device": say what it is.
        if file.metadata().map_err(open_error)?.is_dir() {
            return Err(open_error(std::io::ErrorKind::IsADirectory.into()));
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
        Ok(PcapFile { path, map })
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
        Ok(PcapFile { path, map })
    }

    /// The file's path, as given to [`PcapFile::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the file in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the file is empty (never true for an opened capture).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Calls `on_frame` for every frame in file order.
    pub fn for_each_frame(
        &self,
        mut on_frame: impl FnMut(Frame<'_>),
    ) -> Result<FileStats, CaptureError> {
        if self.map[..4] == PCAPNG_MAGIC {
            self.walk_pcapng(&mut on_frame)
        } else {
            self.walk_pcap(&mut on_frame)
        }
    }

    /// Drops the pages of everything before `rest` from this process once a
    /// whole window has been read, so a large capture does not count against
    /// the sensor's resident memory. A small window is also faster: reading
    /// the benchmark capture took 3–6 % less CPU with 4 MiB than with 32 MiB
    /// (the page-table walk of each release stays in cache).
    fn release_read(&self, rest: &[u8], released: &mut usize) {
        const WINDOW: usize = 4 << 20;
        let read = (self.map.len() - rest.len()) & !(4096 - 1);
        if read >= *released + WINDOW {
            // SAFETY: the mapping is private and read-only, so dropping pages
            // only makes later reads fetch them from the file again; and no
            // frame before `rest` is borrowed any more (each callback has
            // returned).
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    UncheckedAdvice::DontNeed,
                    *released,
                    read - *released,
                )
            };
            *released = read;
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
    fn prefetch_next_page(&self, rest: &[u8], page: &mut usize) {
        const PAGE: usize = 4096;
        let at = self.map.len() - rest.len();
        if at / PAGE == *page {
            return;
        }
        *page = at / PAGE;
        #[cfg(target_arch = "x86_64")]
        if let Some(lines) = self.map.get((*page + 1) * PAGE..(*page + 1) * PAGE + 256) {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            for line in lines.chunks(64) {
                // SAFETY: a prefetch is only a hint; the address is inside
                // the mapping anyway.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
            }
        }
    }

    fn walk_pcap(&self, on_frame: &mut impl FnMut(Frame<'_>)) -> Result<FileStats, CaptureError> {
        let data: &[u8] = &self.map;
        let (mut rest, header) =
            pcap_parser::parse_pcap_header(data).map_err(|_| CaptureError::NotACapture {
                path: self.path.clone(),
            })?;
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
        let mut released = 0;
        let mut page = usize::MAX;
        while !rest.is_empty() {
            self.release_read(rest, &mut released);
            self.prefetch_next_page(rest, &mut page);
            let block = match parse_record(rest) {
                Ok((next, block)) if block.caplen as usize <= shape.max_caplen => {
                    rest = next;
                    block
                }
                parsed => {
                    let cut_at_tail = matches!(parsed, Err(nom::Err::Incomplete(_)))
                        && shape.caplen(rest).is_none_or(|len| len <= shape.max_caplen);
                    if cut_at_tail {
                        stats.truncated = true;
                        break;
                    }
                    // Damaged: resume at the next run of plausible records.
                    let skip = resync(rest, |bytes| shape.plausible(bytes));
                    stats.damaged_records += 1;
                    stats.damaged_bytes += skip as u64;
                    rest = &rest[skip..];
                    continue;
                }
            };
            let Some(link) = link else {
                stats.unsupported_link += 1;
                continue;
            };
            stats.frames += 1;
            on_frame(Frame {
                timestamp_ns: u64::from(block.ts_sec) * 1_000_000_000
                    + u64::from(block.ts_usec) * fraction_to_ns,
                link,
                data: block.data,
            });
        }
        Ok(stats)
    }

    fn walk_pcapng(&self, on_frame: &mut impl FnMut(Frame<'_>)) -> Result<FileStats, CaptureError> {
        let mut rest: &[u8] = &self.map;
        let mut big_endian = false;
        let mut interfaces: Vec<Interface> = Vec::new();
        let mut stats = FileStats::default();
        let mut released = 0;
        let mut page = usize::MAX;
        while !rest.is_empty() {
            self.release_read(rest, &mut released);
            self.prefetch_next_page(rest, &mut page);
            let parsed = if big_endian {
                pcap_parser::pcapng::parse_block_be(rest)
            } else {
                pcap_parser::pcapng::parse_block_le(rest)
            };
            let block = match parsed {
                Ok((next, block)) => {
                    rest = next;
                    block
                }
                Err(error) => {
                    let own_len = block_len(rest, big_endian);
                    let cut_at_tail = matches!(error, nom::Err::Incomplete(_))
                        && own_len.is_none_or(|len| len > rest.len() && len <= MAX_BLOCK);
                    if cut_at_tail {
                        stats.truncated = true;
                        break;
                    }
                    // A block that does not parse: its own length, when that
                    // is consistent, says where the next one starts; if not,
                    // the next run of well-formed blocks.
                    let skip = match own_len {
                        Some(len) if block_fits(rest, len, big_endian) => len,
                        _ => resync(rest, |bytes| plausible_block(bytes, big_endian)),
                    };
                    stats.damaged_records += 1;
                    stats.damaged_bytes += skip as u64;
                    rest = &rest[skip..];
                    continue;
                }
            };
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
                            });
                        }
                        None => stats.unsupported_link += 1,
                    }
                }
                Block::SimplePacket(spb) => {
                    // Simple packets belong to interface 0 and carry no timestamp.
                    match interfaces.first().and_then(|i| i.link) {
                        Some(link) => {
                            stats.frames += 1;
                            let len = (spb.origlen as usize).min(spb.data.len());
                            on_frame(Frame {
                                timestamp_ns: 0,
                                link,
                                data: &spb.data[..len],
                            });
                        }
                        None => stats.unsupported_link += 1,
                    }
                }
                _ => {}
            }
        }
        Ok(stats)
    }
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
    /// Timestamp units per second (`if_tsresol`), 10^6 by default.
    units_per_second: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_seconds: i64,
}

/// pcapng option codes of an interface description block.
mod option {
    pub const IF_TSRESOL: u16 = 9;
    pub const IF_TSOFFSET: u16 = 14;
}

impl Interface {
    fn new(idb: &InterfaceDescriptionBlock<'_>, big_endian: bool) -> Interface {
        let mut interface = Interface {
            link: LinkType::from_pcap(idb.linktype.0),
            units_per_second: 1_000_000,
            offset_seconds: 0,
        };
        for option in &idb.options {
            let value = option
                .value
                .get(..usize::from(option.len))
                .unwrap_or_default();
            match (option.code.0, value) {
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
