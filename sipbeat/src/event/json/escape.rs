//! JSON string escaping at vector width: the bytes of every string value
//! of an event, whole SIP messages included, pass through here.
//!
//! Values are scanned a block of 64 bytes at a time (one AVX-512 register
//! where the CPU has AVX-512BW, detected at run time; four SSE2 chunks
//! otherwise) into a mask of the bytes that need escaping; each block is
//! stored to the output whole before it is known to be clean, and the
//! output cursor then moves past the clean part only, so clean text is
//! never copied twice nor handed to `memcpy` in short pieces. Where the CPU
//! also has AVX-512 VBMI2, a block whose escapes are all two bytes long
//! (`\r`, `\n`, `\"`, ...: a SIP message's line ends) is written with its
//! escapes in place by two byte compressions instead of one escape at a
//! time. UTF-8 is checked in the same pass. Short values (most fields) take
//! one 16-byte chunk inline.

/// Case folding applied while a string is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    AsIs,
    Lower,
    Upper,
}

/// The value was not UTF-8; what was appended must be discarded.
#[derive(Debug, PartialEq, Eq)]
pub struct NotUtf8;

/// Appends `value` with JSON escapes, in one pass that also checks UTF-8
/// (how: see the module documentation). On `Err`, what was appended must be
/// discarded.
#[inline]
pub fn escape_into(out: &mut Vec<u8>, value: &[u8], case: Case) -> Result<(), NotUtf8> {
    // Most values are short and plain (tags, hosts, methods): one chunk,
    // one store, without the set-up of the general loop.
    if let Some(chunk) = PlainChunk::new(value, case) {
        out.reserve(CHUNK);
        // SAFETY: CHUNK bytes were reserved past the length, and the new
        // length covers only the value's bytes of the store.
        unsafe {
            chunk.store(out.as_mut_ptr().add(out.len()));
            out.set_len(out.len() + value.len());
        }
        return Ok(());
    }
    escape_long(out, value, case)
}

/// A value of at most [`PlainChunk::LEN`] ASCII bytes that needs no
/// escaping, loaded into one register and case-folded: what
/// [`escape_into`] stores for it, for a writer that stores it together
/// with its key and quotes.
#[derive(Clone, Copy)]
pub struct PlainChunk(Chunk);

impl PlainChunk {
    /// Bytes [`PlainChunk::store`] writes, whatever the value's length.
    pub const LEN: usize = CHUNK;

    /// `value` folded to `case`, when it is short, ASCII and free of bytes
    /// to escape.
    #[inline(always)]
    pub fn new(value: &[u8], case: Case) -> Option<PlainChunk> {
        if value.len() > CHUNK {
            return None;
        }
        let chunk = Chunk::load(value);
        let (special, high) = chunk.masks();
        if (special | high) & ((1 << value.len()) - 1) != 0 {
            return None;
        }
        Some(PlainChunk(chunk.folded(case)))
    }

    /// Stores all [`PlainChunk::LEN`] bytes at `to`: the value's, then
    /// padding past its length for a caller to write over or leave.
    ///
    /// # Safety
    /// `to` must be valid for [`PlainChunk::LEN`] writes.
    #[inline(always)]
    pub unsafe fn store(self, to: *mut u8) {
        // SAFETY: the caller's guarantee, passed on.
        unsafe { self.0.store(to) }
    }
}

/// A value of 17 to 32 ASCII bytes that needs no escaping, as its first
/// and last sixteen bytes (overlapping), case-folded: the next most common
/// field after [`PlainChunk`]'s (host names, media descriptions), written
/// without a call into the escaper.
#[derive(Clone, Copy)]
pub struct PlainPair {
    head: Chunk,
    tail: Chunk,
}

impl PlainPair {
    /// Bytes [`PlainPair::store`] may write, whatever the value's length.
    pub const LEN: usize = 2 * CHUNK;

    /// `value` folded to `case`, when it is 17 to 32 bytes long, ASCII and
    /// free of bytes to escape.
    #[inline(always)]
    pub fn new(value: &[u8], case: Case) -> Option<PlainPair> {
        if value.len() <= CHUNK || value.len() > 2 * CHUNK {
            return None;
        }
        let head = Chunk::from_array(value.first_chunk::<CHUNK>()?);
        let tail = Chunk::from_array(value.last_chunk::<CHUNK>()?);
        let (head_special, head_high) = head.masks();
        let (tail_special, tail_high) = tail.masks();
        if head_special | head_high | tail_special | tail_high != 0 {
            return None;
        }
        Some(PlainPair {
            head: head.folded(case),
            tail: tail.folded(case),
        })
    }

    /// Stores the value's `len` bytes at `to` (the length it was made
    /// from), as two overlapping sixteen-byte stores.
    ///
    /// # Safety
    /// `to` must be valid for `len` writes, and `len` the value's length.
    #[inline(always)]
    pub unsafe fn store(self, to: *mut u8, len: usize) {
        // SAFETY: 17 <= len <= 32, so both stores lie within `len` bytes.
        unsafe {
            self.head.store(to);
            self.tail.store(to.add(len - CHUNK));
        }
    }
}

/// One call per long value, straight into code compiled for the CPU's
/// width (so the block loop inlines there rather than being called).
#[inline(never)]
fn escape_long(out: &mut Vec<u8>, value: &[u8], case: Case) -> Result<(), NotUtf8> {
    escape_at(Width::best(), out, value, case)
}

/// The escaper of `width`, which the CPU must have ([`Width::best`] or
/// below).
#[inline(always)]
fn escape_at(width: Width, out: &mut Vec<u8>, value: &[u8], case: Case) -> Result<(), NotUtf8> {
    match width {
        Width::Sse2 => escape_sse2(out, value, case),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Width::Avx512` is only chosen on CPUs that have it.
        Width::Avx512 => unsafe { wide::escape(out, value, case) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Width::Avx512Vbmi2` is only chosen on CPUs that have it.
        Width::Avx512Vbmi2 => unsafe { wide::escape_expanding(out, value, case) },
    }
}

#[inline(never)]
fn escape_sse2(out: &mut Vec<u8>, value: &[u8], case: Case) -> Result<(), NotUtf8> {
    escape_cased::<Block>(out, value, case)
}

#[inline(always)]
fn escape_cased<B: Blocks>(out: &mut Vec<u8>, value: &[u8], case: Case) -> Result<(), NotUtf8> {
    match case {
        Case::AsIs => escape_with::<B, AsIs>(out, value),
        Case::Lower => escape_with::<B, Lower>(out, value),
        Case::Upper => escape_with::<B, Upper>(out, value),
    }
}

/// The longest escape, `\u00XX`: no input byte becomes more output than this.
const MAX_ESCAPE: usize = 6;

#[inline(always)]
fn escape_with<B: Blocks, F: Fold>(out: &mut Vec<u8>, value: &[u8]) -> Result<(), NotUtf8> {
    // Room for the worst case plus one whole-block store past it, so the
    // loops below never check capacity. They keep this invariant: `written`
    // exceeds the length at entry by at most MAX_ESCAPE per byte read, and
    // they store (at most BLOCK bytes, or MAX_ESCAPE for an escape) only
    // while bytes remain unread — so every store ends within this capacity.
    out.reserve(value.len() * MAX_ESCAPE + BLOCK);
    let mut at = Cursor {
        read: 0,
        written: out.len(),
        validated: false,
    };
    // Long values (whole messages, bodies) a block at a time.
    escape_blocks::<B, F>(out, value, &mut at)?;
    // The rest (and short values) a chunk at a time.
    while at.read < value.len() {
        let rest = &value[at.read..];
        let chunk = Chunk::load(rest);
        let len = rest.len().min(CHUNK);
        let in_value = if len == CHUNK { !0 } else { (1 << len) - 1 };
        let (special, high) = chunk.masks();
        at.check_utf8(value, u64::from(high & in_value))?;
        // SAFETY: the capacity invariant above.
        unsafe { F::fold(chunk).store(out.as_mut_ptr().add(at.written)) };
        let special = special & in_value;
        if special == 0 {
            at.written += len;
            at.read += len;
            continue;
        }
        let clean = special.trailing_zeros() as usize;
        at.written += clean;
        at.read += clean;
        // SAFETY: the capacity invariant above.
        unsafe { at.escape(out.as_mut_ptr(), value) };
    }
    // SAFETY: every byte below `written` was initialised by the stores above.
    unsafe { out.set_len(at.written) };
    Ok(())
}

/// Which [`Blocks`] the block loop runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Width {
    /// Four SSE2 chunks (or the portable fallback).
    Sse2 = 1,
    /// One AVX-512 register.
    #[cfg(target_arch = "x86_64")]
    Avx512 = 2,
    /// One AVX-512 register, and two-byte escapes expanded in place.
    #[cfg(target_arch = "x86_64")]
    Avx512Vbmi2 = 3,
}

impl Width {
    /// The widest this CPU has: detected once, then one load per call
    /// (asking std about each of six features costs six loads and
    /// branches per long value).
    #[inline(always)]
    fn best() -> Width {
        use std::sync::atomic::{AtomicU8, Ordering};
        // 0 until detected, then the width's discriminant.
        static BEST: AtomicU8 = AtomicU8::new(0);
        match BEST.load(Ordering::Relaxed) {
            0 => {
                let width = Width::detect();
                BEST.store(width as u8, Ordering::Relaxed);
                width
            }
            #[cfg(target_arch = "x86_64")]
            2 => Width::Avx512,
            #[cfg(target_arch = "x86_64")]
            3 => Width::Avx512Vbmi2,
            _ => Width::Sse2,
        }
    }

    #[cold]
    fn detect() -> Width {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
        {
            if std::arch::is_x86_feature_detected!("avx512vbmi")
                && std::arch::is_x86_feature_detected!("avx512vbmi2")
                && std::arch::is_x86_feature_detected!("bmi2")
                && std::arch::is_x86_feature_detected!("popcnt")
            {
                return Width::Avx512Vbmi2;
            }
            return Width::Avx512;
        }
        Width::Sse2
    }

    /// Every width this CPU can run, for tests.
    #[cfg(test)]
    fn all() -> Vec<Width> {
        match Width::best() {
            Width::Sse2 => vec![Width::Sse2],
            #[cfg(target_arch = "x86_64")]
            Width::Avx512 => vec![Width::Sse2, Width::Avx512],
            #[cfg(target_arch = "x86_64")]
            Width::Avx512Vbmi2 => vec![Width::Sse2, Width::Avx512, Width::Avx512Vbmi2],
        }
    }
}

/// The block loop of [`escape_with`]: one mask serves every escape in a
/// block, and after an escape the rest of the block is stored again at its
/// new place. Stops where fewer than BLOCK bytes remain. The caller has
/// reserved what [`escape_with`] reserves.
#[inline(always)]
fn escape_blocks<B: Blocks, F: Fold>(
    out: &mut Vec<u8>,
    value: &[u8],
    at: &mut Cursor,
) -> Result<(), NotUtf8> {
    while let Some((block, block_len)) = B::load_up_to(&value[at.read..]) {
        let (mut special, high) = block.masks();
        at.check_utf8(value, high)?;
        let folded = block.fold::<F>();
        // SAFETY (every store below): the capacity invariant of
        // `escape_with`, whose reserve the caller made.
        if special != 0
            && let Some(written) = unsafe {
                folded.store_escaped(special, block_len, out.as_mut_ptr().add(at.written))
            }
        {
            at.written += written;
            at.read += block_len;
            continue;
        }
        unsafe { folded.store(out.as_mut_ptr().add(at.written)) };
        let block_start = at.read;
        let block_end = block_start + block_len;
        loop {
            if special == 0 {
                // The rest of the block is stored where it belongs.
                at.written += block_end - at.read;
                at.read = block_end;
                break;
            }
            let next = block_start + special.trailing_zeros() as usize;
            at.written += next - at.read;
            at.read = next;
            unsafe { at.escape(out.as_mut_ptr(), value) };
            // Past the block (a CRLF may straddle its end)?
            if at.read >= block_end {
                break;
            }
            special &= u64::MAX << (at.read - block_start);
            // The rest of the block moved by the escape: store it again
            // (unless too little is left for this kind of block: the
            // caller's chunk loop finishes it).
            let Some((rest, _)) = B::load_up_to(&value[at.read..]) else {
                break;
            };
            unsafe { rest.fold::<F>().store(out.as_mut_ptr().add(at.written)) };
        }
    }
    Ok(())
}

/// Progress through one value.
struct Cursor {
    /// Bytes of the value consumed.
    read: usize,
    /// Output length so far.
    written: usize,
    /// Whether the value's bytes from a point at or before `read` on were
    /// checked to be UTF-8. Until a non-ASCII byte shows up everything read
    /// is ASCII, so `read` is a character boundary and checking the rest
    /// once suffices.
    validated: bool,
}

impl Cursor {
    #[inline(always)]
    fn check_utf8(&mut self, value: &[u8], high: u64) -> Result<(), NotUtf8> {
        if high != 0 && !self.validated {
            if std::str::from_utf8(&value[self.read..]).is_err() {
                return Err(NotUtf8);
            }
            self.validated = true;
        }
        Ok(())
    }

    /// Writes the escape for the byte at `read` (CRLF, SIP's usual escape,
    /// as one) and moves past it.
    ///
    /// # Safety
    /// `out` must have room for MAX_ESCAPE bytes at `written`.
    #[inline(always)]
    unsafe fn escape(&mut self, out: *mut u8, value: &[u8]) {
        let (escape, escape_len, consumed) =
            if value[self.read] == b'\r' && value.get(self.read + 1) == Some(&b'\n') {
                (*b"\\r\\n\0\0", 4, 2)
            } else {
                let (escape, escape_len) = escape_for(value[self.read]);
                (escape, escape_len, 1)
            };
        // SAFETY: the caller guarantees the room; fixed-size copy.
        unsafe {
            std::ptr::copy_nonoverlapping(escape.as_ptr(), out.add(self.written), MAX_ESCAPE)
        };
        self.written += escape_len;
        self.read += consumed;
    }
}

/// Bytes scanned per step of the block loop.
const BLOCK: usize = 4 * CHUNK;

/// BLOCK bytes scanned and stored as one.
trait Blocks: Copy {
    /// The first BLOCK bytes of `bytes`, or all of them if this kind of
    /// block can hold fewer (the rest reads as zero and masks as nothing),
    /// with how many bytes it holds; `None` when there are none or too few.
    fn load_up_to(bytes: &[u8]) -> Option<(Self, usize)>;
    /// [`Chunk::masks`] for the bytes held.
    fn masks(self) -> (u64, u64);
    fn fold<F: Fold>(self) -> Self;
    /// # Safety
    /// `to` must be valid for BLOCK bytes of writes.
    unsafe fn store(self, to: *mut u8);
    /// Writes the first `len` bytes held with every byte flagged in
    /// `special` escaped in place, and returns how many bytes that took —
    /// if every escape is two bytes long and this kind of block can;
    /// otherwise `None`, and the caller escapes one byte at a time.
    ///
    /// # Safety
    /// `to` must be valid for BLOCK bytes of writes, and for 2 * BLOCK when
    /// `len` exceeds BLOCK / 2 (the capacity invariant of [`escape_with`]
    /// guarantees both).
    #[inline(always)]
    unsafe fn store_escaped(self, _special: u64, _len: usize, _to: *mut u8) -> Option<usize> {
        None
    }
}

/// Four chunks, masked together.
#[derive(Clone, Copy)]
struct Block([Chunk; 4]);

impl Blocks for Block {
    /// Whole blocks only: short rests go through the chunk loop.
    #[inline(always)]
    fn load_up_to(bytes: &[u8]) -> Option<(Block, usize)> {
        let block: &[u8; BLOCK] = bytes.first_chunk()?;
        let chunk =
            |n: usize| Chunk::from_array(block[n * CHUNK..].first_chunk().expect("in block"));
        Some((Block([chunk(0), chunk(1), chunk(2), chunk(3)]), BLOCK))
    }

    #[inline(always)]
    fn masks(self) -> (u64, u64) {
        self.0
            .iter()
            .enumerate()
            .fold((0, 0), |(special, high), (n, chunk)| {
                let (s, h) = chunk.masks();
                (
                    special | u64::from(s) << (n * CHUNK),
                    high | u64::from(h) << (n * CHUNK),
                )
            })
    }

    #[inline(always)]
    fn fold<F: Fold>(self) -> Block {
        Block(self.0.map(F::fold))
    }

    #[inline(always)]
    unsafe fn store(self, to: *mut u8) {
        for (n, chunk) in self.0.into_iter().enumerate() {
            // SAFETY: within the caller's BLOCK bytes.
            unsafe { chunk.store(to.add(n * CHUNK)) };
        }
    }
}

/// The block loop on one AVX-512 register, where the CPU has AVX-512BW:
/// one load, three compares into mask registers and one store per block
/// instead of four of each. With VBMI2 as well, blocks whose escapes are
/// all two bytes long are written whole, escapes included.
#[cfg(target_arch = "x86_64")]
mod wide {
    use std::arch::x86_64::*;

    use super::{BLOCK, Blocks, Case, Fold, NotUtf8};

    /// [`super::escape_long`] compiled for AVX-512BW.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX-512BW ([`super::Width::best`]).
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn escape(
        out: &mut Vec<u8>,
        value: &[u8],
        case: Case,
    ) -> Result<(), NotUtf8> {
        super::escape_cased::<Block512<false>>(out, value, case)
    }

    /// [`super::escape_long`] compiled for AVX-512BW and VBMI2, with
    /// [`Blocks::store_escaped`].
    ///
    /// # Safety
    /// The CPU must have AVX-512F, AVX-512BW, AVX-512VBMI, AVX-512VBMI2,
    /// BMI2 and POPCNT ([`super::Width::best`]).
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vbmi2,bmi2,popcnt")]
    pub(super) unsafe fn escape_expanding(
        out: &mut Vec<u8>,
        value: &[u8],
        case: Case,
    ) -> Result<(), NotUtf8> {
        super::escape_cased::<Block512<true>>(out, value, case)
    }

    /// A block in one register; `EXPAND` when the CPU has VBMI2 (and
    /// `store_escaped` may use it).
    #[derive(Clone, Copy)]
    struct Block512<const EXPAND: bool>(__m512i);

    /// The second byte of each two-byte escape, by the low nibble of the
    /// byte escaped: `"` 0x22, `\t` 0x09, `\n` 0x0a, `\\` 0x5c, `\r` 0x0d
    /// (no two share a nibble). Repeated for each 128-bit lane.
    const SECOND_BYTE: [u8; 16] = *b"\0\0\"\0\0\0\0\0\0tn\0\\r\0\0";

    /// Byte positions that interleave the first and second bytes of the
    /// escapes for one half of a block: output byte 2i is the block's byte
    /// `i` (or a backslash), 2i + 1 that byte's second escape byte.
    const fn interleave(half: u8) -> [u8; 64] {
        let mut index = [0; 64];
        let mut i = 0;
        while i < 32 {
            index[2 * i] = half * 32 + i as u8;
            index[2 * i + 1] = 64 + half * 32 + i as u8;
            i += 1;
        }
        index
    }
    const INTERLEAVE: [[u8; 64]; 2] = [interleave(0), interleave(1)];

    /// Bits of `mask` moved to the even bit positions of the result.
    #[inline(always)]
    fn spread(mask: u32) -> u64 {
        // SAFETY: only reached from `escape_expanding` (BMI2).
        unsafe { _pdep_u64(u64::from(mask), 0x5555_5555_5555_5555) }
    }

    // SAFETY (every intrinsic below): only instantiated inside the two
    // functions above, both compiled for AVX-512F and AVX-512BW, and with
    // `EXPAND` only inside the one also compiled for VBMI, VBMI2 and BMI2.
    impl<const EXPAND: bool> Blocks for Block512<EXPAND> {
        /// Any length: a masked load reads just the bytes there are (and
        /// cannot fault on the ones masked off), so a value's last block
        /// and values shorter than a block take one step too. The lanes
        /// past the value hold a letter, which masks as nothing.
        #[inline(always)]
        fn load_up_to(bytes: &[u8]) -> Option<(Self, usize)> {
            if bytes.is_empty() {
                return None;
            }
            let len = bytes.len().min(BLOCK);
            let present = u64::MAX >> (BLOCK - len);
            let block = unsafe {
                _mm512_mask_loadu_epi8(_mm512_set1_epi8(b'x' as i8), present, bytes.as_ptr().cast())
            };
            Some((Block512(block), len))
        }

        #[inline(always)]
        fn masks(self) -> (u64, u64) {
            unsafe {
                let quote = _mm512_cmpeq_epi8_mask(self.0, _mm512_set1_epi8(b'"' as i8));
                let backslash = _mm512_cmpeq_epi8_mask(self.0, _mm512_set1_epi8(b'\\' as i8));
                let control = _mm512_cmple_epu8_mask(self.0, _mm512_set1_epi8(0x1f));
                (quote | backslash | control, _mm512_movepi8_mask(self.0))
            }
        }

        #[inline(always)]
        fn fold<F: Fold>(self) -> Self {
            let (first, last, delta) = match F::CASE {
                Case::AsIs => return self,
                Case::Lower => (b'A', b'Z', 0x20),
                Case::Upper => (b'a', b'z', -0x20),
            };
            unsafe {
                let in_range = _mm512_cmpge_epu8_mask(self.0, _mm512_set1_epi8(first as i8))
                    & _mm512_cmple_epu8_mask(self.0, _mm512_set1_epi8(last as i8));
                Block512(_mm512_mask_add_epi8(
                    self.0,
                    in_range,
                    self.0,
                    _mm512_set1_epi8(delta),
                ))
            }
        }

        #[inline(always)]
        unsafe fn store(self, to: *mut u8) {
            // SAFETY: the caller guarantees the destination; unaligned store.
            unsafe { _mm512_storeu_si512(to.cast(), self.0) }
        }

        /// Each half block (32 bytes) becomes 64 byte slots, two per byte:
        /// the byte (or a backslash) and its second escape byte; one
        /// compression drops the second slots of bytes not escaped.
        #[inline(always)]
        unsafe fn store_escaped(self, special: u64, len: usize, to: *mut u8) -> Option<usize> {
            if !EXPAND {
                return None;
            }
            unsafe {
                let is = |b: u8| _mm512_cmpeq_epi8_mask(self.0, _mm512_set1_epi8(b as i8));
                let two_byte = is(b'"') | is(b'\\') | is(b'\n') | is(b'\r') | is(b'\t');
                if special & !two_byte != 0 {
                    return None;
                }
                let first = _mm512_mask_blend_epi8(special, self.0, _mm512_set1_epi8(b'\\' as i8));
                let table = _mm512_broadcast_i32x4(_mm_loadu_si128(SECOND_BYTE.as_ptr().cast()));
                let second = _mm512_shuffle_epi8(table, self.0);
                let present = u64::MAX >> (BLOCK - len);
                let mut written = 0;
                for (half, interleave) in INTERLEAVE.iter().enumerate() {
                    if half * 32 >= len {
                        break;
                    }
                    let index = _mm512_loadu_si512(interleave.as_ptr().cast());
                    let slots = _mm512_permutex2var_epi8(first, index, second);
                    let keep = spread((present >> (half * 32)) as u32)
                        | spread((special >> (half * 32)) as u32) << 1;
                    let packed = _mm512_maskz_compress_epi8(keep, slots);
                    // SAFETY: the caller guarantees BLOCK bytes at `to` and,
                    // for a second half, BLOCK more past the first half's
                    // output (at most BLOCK bytes).
                    _mm512_storeu_si512(to.add(written).cast(), packed);
                    written += keep.count_ones() as usize;
                }
                Some(written)
            }
        }
    }
}

/// The escape for a byte [`Chunk::masks`] flags, padded to a fixed size so
/// it is stored with one fixed-size copy; the second value is its length.
fn escape_for(b: u8) -> ([u8; MAX_ESCAPE], usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => (*b"\\\"\0\0\0\0", 2),
        b'\\' => (*b"\\\\\0\0\0\0", 2),
        b'\n' => (*b"\\n\0\0\0\0", 2),
        b'\r' => (*b"\\r\0\0\0\0", 2),
        b'\t' => (*b"\\t\0\0\0\0", 2),
        _ => (
            [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            6,
        ),
    }
}

/// Bytes scanned per step.
const CHUNK: usize = 16;

/// Up to sixteen bytes of a value: a vector register on x86_64.
#[derive(Clone, Copy)]
struct Chunk(
    #[cfg(target_arch = "x86_64")] std::arch::x86_64::__m128i,
    #[cfg(not(target_arch = "x86_64"))] [u8; CHUNK],
);

impl Chunk {
    /// The first CHUNK bytes of `bytes`, zero-padded when it is shorter.
    #[inline(always)]
    fn load(bytes: &[u8]) -> Chunk {
        if let Some(whole) = bytes.first_chunk::<CHUNK>() {
            return Chunk::from_array(whole);
        }
        let (low, high) = crate::simd::load_words(bytes);
        Chunk::from_words(low, high)
    }

    /// The chunk folded to `case` chosen at run time (the block loop
    /// chooses its [`Fold`] at compile time instead).
    #[inline(always)]
    fn folded(self, case: Case) -> Chunk {
        match case {
            Case::AsIs => AsIs::fold(self),
            Case::Lower => Lower::fold(self),
            Case::Upper => Upper::fold(self),
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Chunk {
    #[inline(always)]
    fn from_array(bytes: &[u8; CHUNK]) -> Chunk {
        use std::arch::x86_64::_mm_loadu_si128;
        // SAFETY: SSE2 is part of the x86_64 baseline; an unaligned load of
        // exactly the array's 16 bytes.
        Chunk(unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) })
    }

    /// Bytes 0..8 from `low`, 8..16 from `high`, little-endian.
    #[inline(always)]
    fn from_words(low: u64, high: u64) -> Chunk {
        // SAFETY: SSE2 is part of the x86_64 baseline.
        Chunk(unsafe { std::arch::x86_64::_mm_set_epi64x(high as i64, low as i64) })
    }

    /// Bit `n` of the first mask is set when byte `n` needs escaping (`"`,
    /// `\`, below 0x20); the second flags bytes at or above 0x80.
    #[inline(always)]
    fn masks(self) -> (u32, u32) {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86_64 baseline.
        unsafe {
            let bytes = self.0;
            let quote = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\\' as i8));
            // b <= 0x1f  <=>  max(b, 0x1f) == 0x1f (unsigned)
            let control = _mm_cmpeq_epi8(
                _mm_max_epu8(bytes, _mm_set1_epi8(0x1f)),
                _mm_set1_epi8(0x1f),
            );
            let special = _mm_or_si128(_mm_or_si128(quote, backslash), control);
            (
                _mm_movemask_epi8(special) as u32,
                _mm_movemask_epi8(bytes) as u32,
            )
        }
    }

    /// Adds `delta` to the ASCII letters from `first` to `last`.
    #[inline(always)]
    fn shift_range(self, first: u8, last: u8, delta: i8) -> Chunk {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86_64 baseline. Bytes at or above
        // 0x80 compare as negative and are never in the range.
        unsafe {
            let bytes = self.0;
            let in_range = _mm_and_si128(
                _mm_cmpgt_epi8(bytes, _mm_set1_epi8(first as i8 - 1)),
                _mm_cmplt_epi8(bytes, _mm_set1_epi8(last as i8 + 1)),
            );
            Chunk(_mm_add_epi8(
                bytes,
                _mm_and_si128(in_range, _mm_set1_epi8(delta)),
            ))
        }
    }

    /// Writes all CHUNK bytes at `to`.
    ///
    /// # Safety
    /// `to` must be valid for CHUNK bytes of writes.
    #[inline(always)]
    unsafe fn store(self, to: *mut u8) {
        // SAFETY: the caller guarantees the destination; unaligned store.
        unsafe { std::arch::x86_64::_mm_storeu_si128(to.cast(), self.0) }
    }
}

/// Portable fallback: the same operations a byte at a time.
#[cfg(not(target_arch = "x86_64"))]
impl Chunk {
    #[inline(always)]
    fn from_array(bytes: &[u8; CHUNK]) -> Chunk {
        Chunk(*bytes)
    }

    #[inline(always)]
    fn from_words(low: u64, high: u64) -> Chunk {
        let mut bytes = [0; CHUNK];
        bytes[..8].copy_from_slice(&low.to_le_bytes());
        bytes[8..].copy_from_slice(&high.to_le_bytes());
        Chunk(bytes)
    }

    #[inline(always)]
    fn masks(self) -> (u32, u32) {
        self.0
            .iter()
            .enumerate()
            .fold((0, 0), |(special, high), (n, &b)| {
                let needs_escape = b < 0x20 || b == b'"' || b == b'\\';
                (
                    special | u32::from(needs_escape) << n,
                    high | u32::from(b >= 0x80) << n,
                )
            })
    }

    #[inline(always)]
    fn shift_range(self, first: u8, last: u8, delta: i8) -> Chunk {
        Chunk(self.0.map(|b| {
            if (first..=last).contains(&b) {
                b.wrapping_add_signed(delta)
            } else {
                b
            }
        }))
    }

    /// # Safety
    /// `to` must be valid for CHUNK bytes of writes.
    #[inline(always)]
    unsafe fn store(self, to: *mut u8) {
        // SAFETY: the caller guarantees the destination.
        unsafe { std::ptr::copy_nonoverlapping(self.0.as_ptr(), to, CHUNK) }
    }
}

/// A case mapping applied to whole chunks, chosen at compile time so the
/// common as-is path does nothing.
trait Fold {
    const CASE: Case;
    fn fold(chunk: Chunk) -> Chunk;
}

struct AsIs;
struct Lower;
struct Upper;

impl Fold for AsIs {
    const CASE: Case = Case::AsIs;
    #[inline(always)]
    fn fold(chunk: Chunk) -> Chunk {
        chunk
    }
}

impl Fold for Lower {
    const CASE: Case = Case::Lower;
    #[inline(always)]
    fn fold(chunk: Chunk) -> Chunk {
        chunk.shift_range(b'A', b'Z', 0x20)
    }
}

impl Fold for Upper {
    const CASE: Case = Case::Upper;
    #[inline(always)]
    fn fold(chunk: Chunk) -> Chunk {
        chunk.shift_range(b'a', b'z', -0x20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(value: &[u8]) -> String {
        let mut out = Vec::new();
        escape_into(&mut out, value, Case::AsIs).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_match_serde_json() {
        let samples: [&[u8]; 6] = [
            b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n",
            b"\"quoted\" and \\backslash\\ and \x00\x01\x1f\x7f",
            b"no escapes at all in this fairly long string of text",
            "utf-8: \u{43d}\u{43e} \u{442}".as_bytes(),
            b"",
            b"1234567\"",
        ];
        for sample in samples {
            let text = std::str::from_utf8(sample).unwrap();
            let expected = serde_json::to_string(text).unwrap();
            assert_eq!(format!("\"{}\"", escaped(sample)), expected);
        }
    }

    #[test]
    fn every_single_byte_position() {
        // A special byte at each offset of a 24-byte string exercises the
        // word scan and the tail.
        for at in 0..24 {
            for special in [b'"', b'\\', b'\n', 0x01] {
                let mut sample = vec![b'a'; 24];
                sample[at] = special;
                let text = std::str::from_utf8(&sample).unwrap();
                assert_eq!(
                    format!("\"{}\"", escaped(&sample)),
                    serde_json::to_string(text).unwrap()
                );
            }
        }
    }

    #[test]
    fn every_length_case_and_chunk_boundary() {
        // Letters, escapes, CRLF pairs and multi-byte characters at every
        // offset of every length up to three blocks, in each case mode;
        // once with a byte whose escape is six bytes long and once with
        // two-byte escapes only (which VBMI2 writes a block at a time).
        for alphabet in [
            "aZ\r\n\"\\\u{1}\u{e9}\u{20ac}x;",
            "aZ\r\n\"\\\t\u{e9}\u{20ac}x;",
        ] {
            every_length_case_and_chunk_boundary_of(&alphabet.chars().collect::<Vec<_>>());
        }
    }

    fn every_length_case_and_chunk_boundary_of(alphabet: &[char]) {
        for len in 0..3 * BLOCK {
            for shift in 0..alphabet.len() {
                let text: String = (0..len)
                    .map(|n| alphabet[(n * 7 + shift) % alphabet.len()])
                    .collect();
                for (case, expected) in [
                    (Case::AsIs, text.clone()),
                    (Case::Lower, text.to_ascii_lowercase()),
                    (Case::Upper, text.to_ascii_uppercase()),
                ] {
                    let expected = serde_json::to_string(&expected).unwrap();
                    for width in Width::all() {
                        let mut out = b"prefix".to_vec();
                        escape_at(width, &mut out, text.as_bytes(), case).unwrap();
                        assert_eq!(
                            std::str::from_utf8(&out[6..]).unwrap(),
                            &expected[1..expected.len() - 1],
                            "{case:?} {width:?} {text:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn plain_values_of_every_length_through_the_entry_point() {
        // Values that need no escaping, at every length, through the public
        // entry point: the short-value chunk and the block loops.
        let letters = b"sip:Alice.Smith@Example.COM;transport=TCP?x=1";
        for len in 0..3 * BLOCK {
            let value: Vec<u8> = letters.iter().copied().cycle().take(len).collect();
            let text = std::str::from_utf8(&value).unwrap();
            for (case, expected) in [
                (Case::AsIs, text.to_string()),
                (Case::Lower, text.to_ascii_lowercase()),
                (Case::Upper, text.to_ascii_uppercase()),
            ] {
                let mut out = b"prefix".to_vec();
                escape_into(&mut out, &value, case).unwrap();
                assert_eq!(&out[6..], expected.as_bytes(), "{case:?} {len}");
            }
        }
    }

    #[test]
    fn worst_case_growth_and_long_clean_runs() {
        for width in Width::all() {
            for len in [BLOCK - 1, BLOCK, BLOCK + 1, 5 * BLOCK + 3] {
                let controls = vec![1u8; len];
                let mut out = Vec::new();
                escape_at(width, &mut out, &controls, Case::AsIs).unwrap();
                assert_eq!(out, "\\u0001".repeat(len).as_bytes());
                // A CRLF straddling each block boundary in a long clean text.
                for at in [BLOCK - 1, 2 * BLOCK - 1] {
                    let mut text = vec![b'x'; len.max(2 * BLOCK + 1)];
                    text[at] = b'\r';
                    text[at + 1] = b'\n';
                    out.clear();
                    escape_at(width, &mut out, &text, Case::Upper).unwrap();
                    let expected = String::from_utf8(text).unwrap().to_uppercase();
                    assert_eq!(out, expected.replace("\r\n", "\\r\\n").as_bytes());
                }
            }
        }
    }

    #[test]
    fn invalid_utf8_anywhere_is_reported() {
        for width in Width::all() {
            for len in 1..3 * BLOCK {
                for at in 0..len {
                    let mut sample = vec![b'a'; len];
                    sample[at] = 0xff;
                    let mut out = Vec::new();
                    assert_eq!(
                        escape_at(width, &mut out, &sample, Case::AsIs),
                        Err(NotUtf8)
                    );
                }
            }
        }
        // A character cut at the end of the value.
        let mut out = Vec::new();
        assert_eq!(
            escape_into(&mut out, &"x\u{20ac}".as_bytes()[..3], Case::AsIs),
            Err(NotUtf8)
        );
    }
}
