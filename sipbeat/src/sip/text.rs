//! Byte-level grammar pieces shared by the SIP parsers: character classes,
//! LWS trimming, quoted strings, decimal numbers, unfolding.

use std::borrow::Cow;

const fn token_table() -> [bool; 256] {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        c += 1;
    }
    table
}

static TOKEN: [bool; 256] = token_table();

/// RFC 3261 `token` character.
#[inline]
pub fn is_token_byte(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// Non-empty and made of token characters only.
pub fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| is_token_byte(b))
}

/// Classes of bytes whose runs the parsers measure with [`run_len`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// An unquoted parameter value: token characters, `:`, `[` and `]`
    /// (host names, IPv6 references).
    ParamValue,
    /// A Via sent-by: letters, digits and `.-:[]_`.
    SentBy,
}

impl Class {
    /// Whether `b` belongs to the class (the definition the vector code
    /// must agree with).
    pub fn contains(self, b: u8) -> bool {
        match self {
            Class::ParamValue => is_token_byte(b) || matches!(b, b':' | b'[' | b']'),
            Class::SentBy => {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
            }
        }
    }
}

/// Length of the run of `class` bytes at the start of `bytes`, sixteen
/// bytes classified at a time with a dozen compares. For parameter values
/// and hosts (branches, tags, addresses) this beat a lookup and a branch per
/// byte, whose exit at the run's end is hard to predict (benchmarks/history.md); for
/// tokens of a few bytes (methods, names) it did not, so there is no class
/// for them.
#[inline]
pub fn run_len(bytes: &[u8], class: Class) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let mut at = 0;
        while let Some(chunk) = bytes.get(at..at + 16) {
            // SAFETY: the 16-byte unaligned load stays inside `chunk`.
            let members = class_mask(unsafe { _mm_loadu_si128(chunk.as_ptr().cast()) }, class);
            if members != 0xffff {
                return at + (!members).trailing_zeros() as usize;
            }
            at += 16;
        }
        let rest = &bytes[at..];
        let members = class_mask(crate::simd::load_padded(rest), class);
        let outside = !members & ((1u32 << rest.len()) - 1);
        at + if outside == 0 {
            rest.len()
        } else {
            outside.trailing_zeros() as usize
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    bytes
        .iter()
        .position(|&b| !class.contains(b))
        .unwrap_or(bytes.len())
}

/// Bit n set when byte n of `chunk` belongs to `class`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn class_mask(chunk: std::arch::x86_64::__m128i, class: Class) -> u32 {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86_64 baseline.
    unsafe {
        // `lo..=hi`, unsigned: the distance from `lo` is at most `hi - lo`.
        let in_range = |lo: u8, hi: u8| {
            let distance = _mm_sub_epi8(chunk, _mm_set1_epi8(lo as i8));
            _mm_cmpeq_epi8(
                _mm_min_epu8(distance, _mm_set1_epi8((hi - lo) as i8)),
                distance,
            )
        };
        let is = |b: u8| _mm_cmpeq_epi8(chunk, _mm_set1_epi8(b as i8));
        let any = |sets: &[__m128i]| {
            sets.iter()
                .fold(_mm_setzero_si128(), |all, &set| _mm_or_si128(all, set))
        };
        // Setting bit 5 folds the capitals onto the small letters and
        // nothing else onto them.
        let letters = {
            let folded = _mm_or_si128(chunk, _mm_set1_epi8(0x20));
            let distance = _mm_sub_epi8(folded, _mm_set1_epi8(b'a' as i8));
            _mm_cmpeq_epi8(_mm_min_epu8(distance, _mm_set1_epi8(25)), distance)
        };
        let alphanumeric = _mm_or_si128(letters, in_range(b'0', b'9'));
        let members = match class {
            // Token characters, and `:[]`.
            Class::ParamValue => any(&[
                alphanumeric,
                in_range(b'-', b'.'),
                in_range(b'*', b'+'),
                in_range(b'_', b'`'),
                is(b'!'),
                is(b'%'),
                is(b'\''),
                is(b'~'),
                is(b':'),
                is(b'['),
                is(b']'),
            ]),
            Class::SentBy => any(&[
                alphanumeric,
                in_range(b'-', b'.'),
                is(b':'),
                is(b'['),
                is(b']'),
                is(b'_'),
            ]),
        };
        _mm_movemask_epi8(members) as u32
    }
}

/// Linear white space bytes, for [`find_any`].
pub const LWS: [u8; 4] = [b' ', b'\t', b'\r', b'\n'];

/// Space, tab, CR or LF.
#[inline]
pub fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// `bytes` without leading and trailing linear white space.
#[inline]
pub fn trim(bytes: &[u8]) -> &[u8] {
    trim_start(trim_end(bytes))
}

// The trims run on every header value and parameter, which mostly have
// nothing to trim or one space after a colon: a compare or two tells
// (every LWS byte is at most a space) before the byte loops.

/// `bytes` without leading linear white space.
#[inline]
pub fn trim_start(bytes: &[u8]) -> &[u8] {
    match bytes {
        [first, ..] if *first > b' ' => bytes,
        [b' ', second, ..] if *second > b' ' => &bytes[1..],
        _ => {
            let start = bytes
                .iter()
                .position(|&b| !is_lws(b))
                .unwrap_or(bytes.len());
            &bytes[start..]
        }
    }
}

/// `bytes` without trailing linear white space.
#[inline]
pub fn trim_end(bytes: &[u8]) -> &[u8] {
    match bytes {
        [.., last] if *last > b' ' => bytes,
        _ => {
            let end = bytes.iter().rposition(|&b| !is_lws(b)).map_or(0, |i| i + 1);
            &bytes[..end]
        }
    }
}

/// Parses `1*DIGIT` into a number no larger than `max`; `None` otherwise.
pub fn parse_decimal(bytes: &[u8], max: u64) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 {
        // More than 20 digits cannot fit a u64 (leading zeros aside: they
        // are legal but nobody sends twenty of them).
        return None;
    }
    let mut value: u64 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    (value <= max).then_some(value)
}

/// Length of the quoted string at the start of `bytes` (which begins with
/// `"`), closing quote included; `None` when it never closes.
pub fn quoted_len(bytes: &[u8]) -> Option<usize> {
    debug_assert_eq!(bytes.first(), Some(&b'"'));
    let mut i = 1;
    // From one quote or backslash to the next, not byte by byte.
    while let Some(offset) = find_any(bytes.get(i..)?, [b'"', b'\\']) {
        i += offset;
        if bytes[i] == b'"' {
            return Some(i + 1);
        }
        i += 2;
    }
    None
}

/// The content of a quoted string (quotes removed, quoted-pairs resolved).
/// `quoted` must be a complete quoted string as measured by [`quoted_len`].
pub fn unquote(quoted: &[u8]) -> Cow<'_, [u8]> {
    let inner = &quoted[1..quoted.len() - 1];
    if find(inner, b'\\').is_none() {
        return Cow::Borrowed(inner);
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter();
    while let Some(&b) = bytes.next() {
        if b == b'\\' {
            if let Some(&escaped) = bytes.next() {
                out.push(escaped);
            }
        } else {
            out.push(b);
        }
    }
    Cow::Owned(out)
}

/// Replaces each line fold (CRLF or LF followed by white space) and the white
/// space around it with one space, as RFC 3261 §7.3.1 says receivers may.
pub fn unfold(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        if b == b'\r' || b == b'\n' {
            while out.last().is_some_and(|&c| c == b' ' || c == b'\t') {
                out.pop();
            }
            while i < value.len() && is_lws(value[i]) {
                i += 1;
            }
            out.push(b' ');
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Splits a comma-separated header value (`Via`, `Contact`, `Allow`...) at
/// commas outside quoted strings and `<...>`. Yields every piece, empty ones
/// included, trimmed of LWS.
pub fn split_list(value: &[u8]) -> SplitOutsideQuotes<'_, b','> {
    SplitOutsideQuotes { rest: Some(value) }
}

/// Splits `;`-separated parameters the same way.
pub fn split_params(params: &[u8]) -> SplitOutsideQuotes<'_, b';'> {
    SplitOutsideQuotes { rest: Some(params) }
}

/// Iterator returned by [`split_list`] and [`split_params`]. The separator
/// is a constant of the type, not a field read on every step.
pub struct SplitOutsideQuotes<'a, const SEPARATOR: u8> {
    rest: Option<&'a [u8]>,
}

impl<'a, const SEPARATOR: u8> Iterator for SplitOutsideQuotes<'a, SEPARATOR> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        let mut in_angle = false;
        let mut i = 0;
        loop {
            // Jump to the next byte that matters instead of walking each one.
            let found = if in_angle {
                find_any(&rest[i..], [b'>', b'"'])
            } else {
                find_any(&rest[i..], [SEPARATOR, b'<', b'"'])
            };
            let Some(offset) = found else { break };
            i += offset;
            match rest[i] {
                b'"' => match quoted_len(&rest[i..]) {
                    Some(len) => {
                        i += len;
                        continue;
                    }
                    None => break,
                },
                b'<' => in_angle = true,
                b'>' => in_angle = false,
                _ => {
                    self.rest = Some(&rest[i + 1..]);
                    return Some(trim(&rest[..i]));
                }
            }
            i += 1;
        }
        self.rest = None;
        Some(trim(rest))
    }
}

/// Positions of every `\n` in `bytes`, in order. Header lines are short
/// (about 35 bytes), so this scans 64 bytes at a time into a bit mask and
/// walks its bits, instead of restarting a search for every line as
/// `memchr_iter` does.
pub fn line_ends(bytes: &[u8]) -> LineEnds<'_> {
    LineEnds {
        bytes,
        base: 0,
        mask: 0,
        next_block: 0,
    }
}

/// Iterator returned by [`line_ends`].
pub struct LineEnds<'a> {
    bytes: &'a [u8],
    /// Offset of the block `mask` describes.
    base: usize,
    /// Newlines of that block not yet returned, one bit per byte.
    mask: u64,
    /// Offset of the next block to scan.
    next_block: usize,
}

/// Bytes per newline mask: a message's header section takes about eight
/// (sixteen-byte steps cost a quarter of the header split in loop control).
const LINE_BLOCK: usize = 64;

impl Iterator for LineEnds<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        loop {
            if self.mask != 0 {
                let at = self.base + self.mask.trailing_zeros() as usize;
                self.mask &= self.mask - 1;
                return Some(at);
            }
            if self.next_block >= self.bytes.len() {
                return None;
            }
            self.base = self.next_block;
            self.mask = newline_mask(&self.bytes[self.base..]);
            self.next_block += LINE_BLOCK;
        }
    }
}

/// Bit n set when byte n of the (up to 64) bytes at the start of `bytes` is `\n`.
#[inline]
fn newline_mask(bytes: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY (every intrinsic here): SSE2 is part of the x86_64 baseline.
        let newlines = |chunk: __m128i| unsafe {
            u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(chunk, _mm_set1_epi8(b'\n' as i8))) as u16)
        };
        // SAFETY: each 16-byte unaligned load stays inside the slice it reads.
        let load = |chunk: &[u8; 16]| unsafe { _mm_loadu_si128(chunk.as_ptr().cast()) };
        if let Some(block) = bytes.first_chunk::<LINE_BLOCK>() {
            let chunk = |n: usize| newlines(load(block[n * 16..].first_chunk().expect("in block")));
            return chunk(0) | chunk(1) << 16 | chunk(2) << 32 | chunk(3) << 48;
        }
        // The last, short block: whole chunks, then the rest assembled from
        // words (zero-padded, and zero is no newline).
        let mut mask = 0;
        let mut at = 0;
        while let Some(chunk) = bytes.get(at..).and_then(<[u8]>::first_chunk) {
            mask |= newlines(load(chunk)) << at;
            at += 16;
        }
        let rest = &bytes[at..];
        if !rest.is_empty() {
            mask |= newlines(crate::simd::load_padded(rest)) << at;
        }
        mask
    }
    #[cfg(not(target_arch = "x86_64"))]
    bytes.iter().take(LINE_BLOCK).enumerate().fold(
        0,
        |mask, (i, &b)| if b == b'\n' { mask | 1 << i } else { mask },
    )
}

/// Position of the first byte of `bytes` that is one of `set` (a few
/// bytes): sixteen bytes at a time, with no set-up cost for short values.
#[inline]
pub fn find_any<const N: usize>(bytes: &[u8], set: [u8; N]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // Bit i set when byte i of `chunk` is one of `set`.
        let hits = |chunk: __m128i| {
            // SAFETY: SSE2 is part of the x86_64 baseline.
            unsafe {
                let hits = set.iter().fold(_mm_setzero_si128(), |hits, &b| {
                    _mm_or_si128(hits, _mm_cmpeq_epi8(chunk, _mm_set1_epi8(b as i8)))
                });
                _mm_movemask_epi8(hits) as u32
            }
        };
        let mut at = 0;
        // Whole chunks load in one instruction; only the last, short one
        // is assembled from words (most values are shorter than a chunk).
        while let Some(chunk) = bytes.get(at..at + 16) {
            // SAFETY: the 16-byte unaligned load stays inside `chunk`.
            let mask = hits(unsafe { _mm_loadu_si128(chunk.as_ptr().cast()) });
            if mask != 0 {
                return Some(at + mask.trailing_zeros() as usize);
            }
            at += 16;
        }
        let rest = &bytes[at..];
        if rest.is_empty() {
            return None;
        }
        let mask = hits(crate::simd::load_padded(rest)) & ((1u32 << rest.len()) - 1);
        (mask != 0).then(|| at + mask.trailing_zeros() as usize)
    }
    #[cfg(not(target_arch = "x86_64"))]
    bytes.iter().position(|b| set.contains(b))
}

/// Position of the first `byte` in `bytes`. For the short fields of a
/// header value [`find_any`] beats `memchr`, whose set-up dominates there.
#[inline]
pub fn find(bytes: &[u8], byte: u8) -> Option<usize> {
    find_any(bytes, [byte])
}

/// Position of the last `byte` in `bytes` (see [`find`]).
#[inline]
pub fn rfind(bytes: &[u8], byte: u8) -> Option<usize> {
    bytes.iter().rposition(|&b| b == byte)
}

/// ASCII case-insensitive prefix test.
pub fn starts_with_ignore_case(bytes: &[u8], prefix: &[u8]) -> bool {
    bytes.len() >= prefix.len() && bytes[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// ASCII case-insensitive suffix test.
pub fn ends_with_ignore_case(bytes: &[u8], suffix: &[u8]) -> bool {
    bytes.len() >= suffix.len() && bytes[bytes.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_match_a_byte_loop() {
        let naive = |bytes: &[u8]| -> (usize, usize) {
            let start = bytes.iter().take_while(|&&b| is_lws(b)).count();
            let end = bytes.len()
                - bytes[start..]
                    .iter()
                    .rev()
                    .take_while(|&&b| is_lws(b))
                    .count();
            (start, end)
        };
        // Every string of up to four bytes over LWS, other controls, a
        // letter and a non-ASCII byte: the fast paths' edges included.
        let alphabet = [b' ', b'\t', b'\r', b'\n', 0x01, b'a', 0x80, 0x7f];
        let mut samples = vec![Vec::new()];
        for len in 1..=4 {
            for mut n in 0..alphabet.len().pow(len) {
                let mut sample = Vec::new();
                for _ in 0..len {
                    sample.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                samples.push(sample);
            }
        }
        for sample in &samples {
            let (start, end) = naive(sample);
            assert_eq!(trim(sample), &sample[start..end], "{sample:?}");
            assert_eq!(trim_start(sample), &sample[start..], "{sample:?}");
            let trailing = sample.iter().rev().take_while(|&&b| is_lws(b)).count();
            assert_eq!(
                trim_end(sample),
                &sample[..sample.len() - trailing],
                "{sample:?}"
            );
        }
    }

    #[test]
    fn line_ends_match_a_plain_search() {
        let samples: [&[u8]; 5] = [
            b"",
            b"no newline at all in this one, long enough for two chunks",
            b"\n",
            b"a\nbb\nccc\n\n0123456789abcdef\n0123456789abcdef0123456789\nend",
            b"\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n",
        ];
        // Newlines at every offset of whole and short 64-byte blocks.
        let generated: Vec<Vec<u8>> = (0..200)
            .map(|len| {
                (0..len)
                    .map(|i| if (i * 7 + len) % 11 == 0 { b'\n' } else { b'x' })
                    .collect()
            })
            .collect();
        for sample in samples
            .into_iter()
            .chain(generated.iter().map(Vec::as_slice))
        {
            let expected: Vec<usize> = sample
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i)
                .collect();
            assert_eq!(line_ends(sample).collect::<Vec<_>>(), expected);
        }
    }

    #[test]
    fn find_any_matches_a_plain_search() {
        let alphabet = b"ab;c d\t?<>\"xy";
        let text: Vec<u8> = (0..40).map(|n| alphabet[n * 7 % alphabet.len()]).collect();
        for start in 0..text.len() {
            for end in start..=text.len() {
                let part = &text[start..end];
                let set = [b';', b'?', b' '];
                assert_eq!(
                    find_any(part, set),
                    part.iter().position(|b| set.contains(b)),
                    "{part:?}"
                );
                assert_eq!(find(part, b'x'), part.iter().position(|&b| b == b'x'));
            }
        }
    }

    #[test]
    fn decimal_limits() {
        assert_eq!(parse_decimal(b"0068", 255), Some(68));
        assert_eq!(parse_decimal(b"256", 255), None);
        assert_eq!(parse_decimal(b"-1", 255), None);
        assert_eq!(parse_decimal(b"", 255), None);
        assert_eq!(parse_decimal(b"36893488147419103232", u64::MAX), None);
    }

    #[test]
    fn runs_end_at_the_first_byte_outside_the_class() {
        // Every byte value at every position of runs up to three chunks
        // long, against the byte-wise definition.
        for class in [Class::ParamValue, Class::SentBy] {
            for len in 0..48 {
                for at in 0..=len {
                    for byte in 0..=255u8 {
                        let mut bytes = vec![b'a'; len];
                        if at < len {
                            bytes[at] = byte;
                        }
                        let expected = bytes
                            .iter()
                            .position(|&b| !class.contains(b))
                            .unwrap_or(len);
                        assert_eq!(run_len(&bytes, class), expected, "{class:?} {bytes:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn quoted_strings() {
        assert_eq!(quoted_len(br#""a\"b" rest"#), Some(6));
        assert_eq!(quoted_len(br#""never closes"#), None);
        assert_eq!(quoted_len(br#""""#), Some(2));
        assert_eq!(quoted_len(br#""a\\" b"#), Some(5));
        assert_eq!(quoted_len(br#""a\" b"#), None);
        assert_eq!(quoted_len(br#""ends in a backslash\"#), None);
        // Past one 16-byte chunk, with an escaped quote in the second.
        assert_eq!(quoted_len(br#""0123456789abcdef\"x" tail"#), Some(21));
        assert_eq!(&*unquote(br#""J Rosenberg \\\"""#), br#"J Rosenberg \""#);
        assert!(matches!(unquote(br#""plain""#), Cow::Borrowed(b"plain")));
    }

    #[test]
    fn unfolding_collapses_white_space() {
        assert_eq!(unfold(b"0009\r\n  INVITE"), b"0009 INVITE");
        assert_eq!(unfold(b"a \r\n\tb"), b"a b");
    }

    #[test]
    fn split_respects_quotes_and_angles() {
        let parts: Vec<&[u8]> = split_list(br#""a,b" <sip:x;p=1,2>, <sip:y> ,, z"#).collect();
        assert_eq!(
            parts,
            [&br#""a,b" <sip:x;p=1,2>"#[..], b"<sip:y>", b"", b"z"]
        );
    }
}
