//! One JSON object, written field by field straight into the output's
//! buffer.
//!
//! [`JsonWriter`] knows nothing of field meaning: it writes keys the caller
//! guarantees are plain ASCII, and escapes every value ([`escape_into`]). Invalid
//! UTF-8 in a value (SIP is bytes) becomes U+FFFD, as in Beats. Escaping at
//! vector width is what makes JSON output cheap next to parsing (see
//! `benches/pipeline.rs`).

mod escape;

use std::net::IpAddr;
use std::ops::Range;

pub use escape::{Case, NotUtf8, escape_into};
use escape::{PlainChunk, PlainPair};

/// Appends one JSON object to a buffer it borrows: the output's own batch,
/// so an event is written where it will be sent from.
#[derive(Debug)]
pub struct JsonWriter<'b> {
    buf: &'b mut Vec<u8>,
    /// Whether the next key or element needs a comma before it.
    needs_comma: bool,
}

impl<'b> JsonWriter<'b> {
    /// Opens an object at the end of `buf`.
    pub fn new(buf: &'b mut Vec<u8>) -> JsonWriter<'b> {
        buf.push(b'{');
        JsonWriter {
            buf,
            needs_comma: false,
        }
    }

    /// Closes the top-level object.
    pub fn finish(self) {
        self.buf.push(b'}');
    }

    /// The members `write` writes (`"a":1,"b":"x"`, no braces): a fragment
    /// written once and then copied into events by [`JsonWriter::members`].
    pub fn fragment(write: impl FnOnce(&mut JsonWriter<'_>)) -> Vec<u8> {
        let mut text = Vec::new();
        JsonWriter::fragment_into(&mut text, write);
        text
    }

    /// Like [`JsonWriter::fragment`], appending to `out` (whose allocation
    /// a caller can reuse).
    pub fn fragment_into(out: &mut Vec<u8>, write: impl FnOnce(&mut JsonWriter<'_>)) {
        write(&mut JsonWriter {
            buf: out,
            needs_comma: false,
        });
    }

    /// Writes `"key":`. `key` must need no escaping.
    #[inline]
    pub fn key(&mut self, key: &str) {
        self.key_then(key, b"");
    }

    /// Writes `"key":` and then `after` (`{`, `[`, or the quote opening a
    /// string).
    #[inline(always)]
    fn key_then(&mut self, key: &str, after: &[u8]) {
        // SAFETY: exactly `after.len()` bytes are written and counted.
        unsafe {
            self.field_with(key, after.len(), |out| {
                std::ptr::copy_nonoverlapping(after.as_ptr(), out, after.len());
                after.len()
            });
        }
    }

    /// Writes `"key":` (after a comma when one is needed) and then what
    /// `write` writes at the position it is given, under one capacity check
    /// and one length update: every field pays for this, and as separate
    /// appends the buffer's pointer and length were reloaded after each.
    ///
    /// # Safety
    /// `write` may write up to `room` bytes from the position it is given
    /// and must return how many it initialised from there, no more than
    /// `room`.
    #[inline(always)]
    unsafe fn field_with(&mut self, key: &str, room: usize, write: impl FnOnce(*mut u8) -> usize) {
        let comma = usize::from(self.needs_comma);
        let head = comma + key.len() + 3;
        self.buf.reserve(head + room);
        // SAFETY: `head + room` bytes were reserved past the length;
        // `write_key` initialises the first `head`, `write` (by the
        // caller's guarantee) `written` of the rest.
        unsafe {
            let end = self.buf.len();
            let out = write_key(self.buf.as_mut_ptr().add(end), comma, key);
            let written = write(out);
            self.buf.set_len(end + head + written);
        }
        self.needs_comma = true;
    }

    /// Opens a nested object under `key`.
    #[inline]
    pub fn open(&mut self, key: &str) {
        self.key_then(key, b"{");
        self.needs_comma = false;
    }

    /// Closes the innermost object or array.
    pub fn close(&mut self) {
        self.buf.push(b'}');
        self.needs_comma = true;
    }

    /// Opens an array under `key`.
    pub fn open_array(&mut self, key: &str) {
        self.key_then(key, b"[");
        self.needs_comma = false;
    }

    /// Closes an array opened with [`JsonWriter::open_array`].
    pub fn close_array(&mut self) {
        self.buf.push(b']');
        self.needs_comma = true;
    }

    /// Opens an object as the next array element.
    pub fn open_element(&mut self) {
        self.comma();
        self.buf.push(b'{');
        self.needs_comma = false;
    }

    #[inline]
    fn comma(&mut self) {
        if self.needs_comma {
            self.buf.push(b',');
        }
        self.needs_comma = true;
    }

    /// `"key":"value"`, escaped.
    #[inline]
    pub fn str(&mut self, key: &str, value: &[u8]) {
        self.string_field(key, value, Case::AsIs);
    }

    /// `"key":"value"`, escaped and folded to `case`.
    #[inline(always)]
    fn string_field(&mut self, key: &str, value: &[u8], case: Case) {
        let len = value.len();
        if let Some(chunk) = PlainChunk::new(value, case) {
            // SAFETY: the chunk's store writes `PlainChunk::LEN` bytes, the
            // value's `len` first.
            unsafe { self.plain_string_field(key, len, PlainChunk::LEN, |out| chunk.store(out)) }
        } else if let Some(pair) = PlainPair::new(value, case) {
            // SAFETY: the pair's store writes exactly the value's `len`
            // bytes, at most `PlainPair::LEN`.
            unsafe { self.plain_string_field(key, len, PlainPair::LEN, |out| pair.store(out, len)) }
        } else {
            self.key_then(key, b"\"");
            self.string_body(value, case);
            self.buf.push(b'"');
        }
    }

    /// `"key":"value"` for a short plain value (the most common fields),
    /// quotes and value in one write.
    ///
    /// # Safety
    /// `store` must write the value's `len` bytes at the position it is
    /// given and may write up to `room` bytes there, `len <= room`.
    #[inline(always)]
    unsafe fn plain_string_field(
        &mut self,
        key: &str,
        len: usize,
        room: usize,
        store: impl FnOnce(*mut u8),
    ) {
        // SAFETY: the opening quote, `store`'s `room` bytes and a closing
        // quote within them or just after them fit `room + 2`; the quotes
        // and the value's `len` bytes are counted.
        unsafe {
            self.field_with(key, room + 2, |out| {
                *out = b'"';
                store(out.add(1));
                *out.add(1 + len) = b'"';
                len + 2
            });
        }
    }

    /// [`JsonWriter::str`], returning where the escaped value (without
    /// its quotes) lies in the buffer, for [`JsonWriter::str_then_escaped`].
    /// `str` keeps its own copy of these lines: written as a call to this
    /// one, the build ran 4.6 % more instructions per message (callgrind).
    pub fn str_escaped_at(&mut self, key: &str, value: &[u8]) -> Range<usize> {
        self.key_then(key, b"\"");
        let start = self.buf.len();
        self.string_body(value, Case::AsIs);
        let end = self.buf.len();
        self.buf.push(b'"');
        start..end
    }

    /// `"key":"head" + tail`, where `tail` is a range of this buffer that
    /// [`JsonWriter::str_escaped_at`] wrote: the escaped text of bytes that
    /// follow `head` in the value. Escaping is per character, so this equals
    /// escaping the whole value when `head` ends on an ASCII byte.
    pub fn str_then_escaped(&mut self, key: &str, head: &[u8], tail: Range<usize>) {
        self.key_then(key, b"\"");
        self.string_body(head, Case::AsIs);
        self.buf.extend_from_within(tail);
        self.buf.push(b'"');
    }

    /// `"key":"value"` with ASCII letters lower-cased.
    pub fn str_lower(&mut self, key: &str, value: &[u8]) {
        self.string_field(key, value, Case::Lower);
    }

    /// `"key":"value"` with ASCII letters upper-cased.
    pub fn str_upper(&mut self, key: &str, value: &[u8]) {
        self.string_field(key, value, Case::Upper);
    }

    /// `"key":"value"` for a value known to need no escaping (a constant).
    #[inline]
    pub fn ascii(&mut self, key: &str, value: &'static str) {
        // SAFETY: the quotes and the value are written and counted.
        unsafe {
            self.field_with(key, value.len() + 2, |out| {
                *out = b'"';
                std::ptr::copy_nonoverlapping(value.as_ptr(), out.add(1), value.len());
                *out.add(1 + value.len()) = b'"';
                value.len() + 2
            });
        }
    }

    /// Pre-written members (`"a":1,"b":"x"`), valid JSON without the braces.
    #[inline]
    pub fn members(&mut self, members: &[u8]) {
        if self.needs_comma {
            self.buf.push(b',');
        }
        self.buf.extend_from_slice(members);
        self.needs_comma = true;
    }

    /// `"key":"prefix" + value`; `prefix` must need no escaping.
    pub fn str_prefixed(&mut self, key: &str, prefix: &str, value: &[u8], case: Case) {
        self.key_then(key, b"\"");
        self.buf.extend_from_slice(prefix.as_bytes());
        self.string_body(value, case);
        self.buf.push(b'"');
    }

    /// A string as the next array element.
    pub fn element(&mut self, value: &[u8], case: Case) {
        let Some(chunk) = PlainChunk::new(value, case) else {
            self.comma();
            self.string(value, case);
            return;
        };
        // A short plain value under one capacity check, as in
        // `plain_string_field`.
        let comma = usize::from(self.needs_comma);
        self.buf.reserve(comma + 1 + PlainChunk::LEN + 1);
        // SAFETY: the reservation covers the comma, the opening quote, the
        // chunk's whole store and a closing quote within it or just after
        // it; the new length covers exactly what was written.
        unsafe {
            let end = self.buf.len();
            let out = self.buf.as_mut_ptr().add(end);
            *out = b',';
            let out = out.add(comma);
            *out = b'"';
            chunk.store(out.add(1));
            *out.add(1 + value.len()) = b'"';
            self.buf.set_len(end + comma + value.len() + 2);
        }
        self.needs_comma = true;
    }

    /// `"key":number`.
    #[inline(always)]
    pub fn u64(&mut self, key: &str, value: u64) {
        // SAFETY: `write_decimal` writes (and returns) at most MAX_DECIMAL
        // bytes.
        unsafe { self.field_with(key, MAX_DECIMAL, |out| write_decimal(out, value)) }
    }

    /// `"key":` followed by `raw`, which must already be valid JSON.
    pub fn raw(&mut self, key: &str, raw: &[u8]) {
        self.key(key);
        self.buf.extend_from_slice(raw);
    }

    /// `"key":"address"`.
    pub fn ip(&mut self, key: &str, ip: &QuotedIp) {
        // SAFETY: the whole array fits its room; only the address's
        // initialised bytes are counted.
        unsafe {
            self.field_with(key, ip.text.len(), |out| {
                std::ptr::write_unaligned(out.cast(), ip.text);
                usize::from(ip.len)
            });
        }
    }

    /// An address string as the next array element.
    pub fn ip_element(&mut self, ip: &QuotedIp) {
        self.comma();
        self.quoted_ip(ip);
    }

    /// Copies the whole fixed-size text (no call to `memcpy` for a few
    /// bytes) and counts only the address's.
    #[inline]
    fn quoted_ip(&mut self, ip: &QuotedIp) {
        self.buf.reserve(ip.text.len());
        // SAFETY: the whole array fits the reservation; the new length
        // covers only the address's initialised bytes.
        unsafe {
            let end = self.buf.len();
            let out = self.buf.as_mut_ptr().add(end);
            std::ptr::write_unaligned(out.cast(), ip.text);
            self.buf.set_len(end + usize::from(ip.len));
        }
    }

    /// `"key":"text"` for fixed-size text that needs no escaping (a
    /// timestamp).
    #[inline]
    pub fn ascii_array<const N: usize>(&mut self, key: &str, text: &[u8; N]) {
        // SAFETY: the quotes and the N bytes are written and counted.
        unsafe {
            self.field_with(key, N + 2, |out| {
                *out = b'"';
                out.add(1).cast::<[u8; N]>().write_unaligned(*text);
                *out.add(N + 1) = b'"';
                N + 2
            });
        }
    }

    #[inline]
    fn string(&mut self, value: &[u8], case: Case) {
        self.buf.push(b'"');
        self.string_body(value, case);
        self.buf.push(b'"');
    }

    // Inlined: the short, plain value is the common case, and a call per
    // field cost more than the code it saves.
    #[inline(always)]
    fn string_body(&mut self, value: &[u8], case: Case) {
        let mark = self.buf.len();
        if escape_into(self.buf, value, case).is_err() {
            self.buf.truncate(mark);
            escape_lossy(self.buf, value, case);
        }
    }
}

/// Writes `,"key":` at `out` — the comma only when `comma` is 1, by
/// letting the quote overwrite it otherwise — and returns the position
/// after the colon.
///
/// # Safety
/// `out` must be valid for `comma + key.len() + 3` writes.
#[inline(always)]
unsafe fn write_key(out: *mut u8, comma: usize, key: &str) -> *mut u8 {
    // SAFETY: every write lies within the caller's `comma + key.len() + 3`
    // bytes (the comma slot, when not needed, is the quote's).
    unsafe {
        *out = b',';
        let out = out.add(comma);
        *out = b'"';
        copy_short(key.as_bytes(), out.add(1));
        let out = out.add(1 + key.len());
        *out = b'"';
        *out.add(1) = b':';
        out.add(2)
    }
}

/// Copies `bytes` to `out` with a few word moves when it is short (keys
/// passed down at run time would otherwise cost a call to `memcpy`).
///
/// # Safety
/// `out` must be valid for `bytes.len()` writes.
#[inline(always)]
unsafe fn copy_short(bytes: &[u8], out: *mut u8) {
    let n = bytes.len();
    let src = bytes.as_ptr();
    // SAFETY: every read lies within `bytes` and every write within
    // `out..out + n`; the overlapping pairs cover all `n` bytes.
    unsafe {
        if (8..=16).contains(&n) {
            let head = src.cast::<u64>().read_unaligned();
            let tail = src.add(n - 8).cast::<u64>().read_unaligned();
            out.cast::<u64>().write_unaligned(head);
            out.add(n - 8).cast::<u64>().write_unaligned(tail);
        } else if (4..8).contains(&n) {
            let head = src.cast::<u32>().read_unaligned();
            let tail = src.add(n - 4).cast::<u32>().read_unaligned();
            out.cast::<u32>().write_unaligned(head);
            out.add(n - 4).cast::<u32>().write_unaligned(tail);
        } else {
            std::ptr::copy_nonoverlapping(src, out, n);
        }
    }
}

/// The most digits a `u64` takes.
const MAX_DECIMAL: usize = 20;

/// Writes `value` in decimal at `out` (straight into the output: no
/// intermediate buffer to copy) and returns how many digits it took.
///
/// # Safety
/// `out` must be valid for [`MAX_DECIMAL`] writes.
#[inline]
unsafe fn write_decimal(out: *mut u8, value: u64) -> usize {
    if value >= 100_000_000 {
        // SAFETY: the caller's guarantee, passed on.
        return unsafe { write_decimal_long(out, value) };
    }
    let digits = eight_digits(value as u32);
    // Leading zero digits are the low bytes that are '0'; the last digit
    // of zero is kept.
    let skip = ((digits ^ 0x3030_3030_3030_3030) | 1 << 56).trailing_zeros() / 8;
    let text = digits >> (8 * skip);
    // SAFETY: eight bytes are within the caller's MAX_DECIMAL.
    unsafe { out.cast::<u64>().write_unaligned(text.to_le()) };
    8 - skip as usize
}

/// `value` (below 10^8) as eight ASCII digits, zero-padded, the first in
/// the lowest byte: all eight at once in one word (SWAR) — split into two
/// halves below 10,000, each into two below 100, each of those into two
/// digits, in lanes that never carry into each other.
#[inline]
pub fn eight_digits(value: u32) -> u64 {
    debug_assert!(value < 100_000_000);
    let halves = u64::from(value / 10_000) | u64::from(value % 10_000) << 32;
    let hundreds = ((halves * 10_486) >> 20) & 0x0000_007f_0000_007f;
    let pairs = hundreds | (halves - hundreds * 100) << 16;
    let tens = ((pairs * 103) >> 10) & 0x000f_000f_000f_000f;
    (tens | (pairs - tens * 10) << 8) + 0x3030_3030_3030_3030
}

/// [`write_decimal`] for values of nine digits or more (rare here).
///
/// # Safety
/// `out` must be valid for [`MAX_DECIMAL`] writes.
#[cold]
unsafe fn write_decimal_long(out: *mut u8, value: u64) -> usize {
    let mut buffer = itoa::Buffer::new();
    let text = buffer.format(value).as_bytes();
    // SAFETY: a u64 has at most MAX_DECIMAL digits, which the caller
    // guarantees `out` can take.
    unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), out, text.len()) };
    text.len()
}

/// Not UTF-8: the lossy text, escaped (rare; allocates).
#[cold]
#[inline(never)]
fn escape_lossy(out: &mut Vec<u8>, value: &[u8], case: Case) {
    let lossy = String::from_utf8_lossy(value);
    let done = escape_into(out, lossy.as_bytes(), case);
    debug_assert!(done.is_ok());
}

/// An IP address formatted once as a JSON string, to be written many times
/// (an event names each endpoint address three times).
#[derive(Clone, Copy)]
pub struct QuotedIp {
    text: [u8; 48],
    len: u8,
}

impl QuotedIp {
    pub fn new(ip: &IpAddr) -> QuotedIp {
        let mut quoted = QuotedIp {
            text: [0; 48],
            len: 0,
        };
        let mut out = Vec::with_capacity(0);
        let text: &[u8] = match ip {
            IpAddr::V4(v4) => {
                // Digit by digit: a formatter and a copy per octet cost more
                // than the rest of a new flow's fields.
                let mut at = 1;
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        quoted.text[at] = b'.';
                        at += 1;
                    }
                    if octet >= 100 {
                        quoted.text[at] = b'0' + octet / 100;
                        at += 1;
                    }
                    if octet >= 10 {
                        quoted.text[at] = b'0' + octet / 10 % 10;
                        at += 1;
                    }
                    quoted.text[at] = b'0' + octet % 10;
                    at += 1;
                }
                quoted.text[0] = b'"';
                quoted.text[at] = b'"';
                quoted.len = (at + 1) as u8;
                return quoted;
            }
            IpAddr::V6(v6) => {
                use std::io::Write;
                // Display yields the RFC 5952 form (at most 45 bytes); no escaping needed.
                let _ = write!(out, "\"{v6}\"");
                &out
            }
        };
        quoted.text[..text.len()].copy_from_slice(text);
        quoted.len = text.len() as u8;
        quoted
    }

    /// The address with its quotes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.text[..usize::from(self.len)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_addresses_quote_like_display() {
        for octet in 0..=255u8 {
            for ip in [
                [octet, 0, 9, 10],
                [99, octet, 100, 255],
                [1, 2, octet, 3],
                [255, 10, 0, octet],
            ] {
                let ip = IpAddr::from(ip);
                assert_eq!(
                    QuotedIp::new(&ip).as_bytes(),
                    format!("\"{ip}\"").as_bytes()
                );
            }
        }
    }

    #[test]
    fn a_value_written_as_head_and_escaped_tail_equals_the_whole() {
        let heads: [&[u8]; 3] = [b"", b"INVITE x\r\n\r\n", b"h\xff\"\\\r\n\r\n"];
        let tails: [&[u8]; 4] = [
            b"",
            b"v=0\r\n",
            b"\xe2\x82\r\n\x01",
            "caf\u{e9}\t".as_bytes(),
        ];
        for head in heads {
            for tail in tails {
                let mut split = Vec::new();
                let mut writer = JsonWriter::new(&mut split);
                let escaped = writer.str_escaped_at("tail", tail);
                writer.str_then_escaped("whole", head, escaped);
                writer.finish();
                let mut whole = Vec::new();
                let mut writer = JsonWriter::new(&mut whole);
                writer.str("tail", tail);
                writer.str("whole", &[head, tail].concat());
                writer.finish();
                assert_eq!(
                    split,
                    whole,
                    "{:?} + {:?}",
                    String::from_utf8_lossy(head),
                    String::from_utf8_lossy(tail)
                );
            }
        }
    }

    #[test]
    fn numbers_are_written_like_display() {
        let mut values = vec![0, u64::MAX, u64::MAX / 10];
        let mut power = 1u64;
        while let Some(next) = power.checked_mul(10) {
            values.extend([power - 1, power, power + 1, 2 * power + 3]);
            power = next;
        }
        values.extend((0..2000).map(|i| i * 7919 % 100_000_000));
        for value in values {
            let mut json = Vec::new();
            let mut writer = JsonWriter::new(&mut json);
            writer.u64("n", value);
            writer.finish();
            assert_eq!(
                String::from_utf8(json).unwrap(),
                format!(r#"{{"n":{value}}}"#)
            );
        }
    }

    #[test]
    fn keys_of_every_length_are_copied_whole() {
        let long = "abcdefghijklmnopqrstuvwxyz0123456789";
        for len in 1..=long.len() {
            let key = &long[..len];
            let mut json = Vec::new();
            let mut writer = JsonWriter::new(&mut json);
            writer.open(key);
            writer.ip(key, &QuotedIp::new(&"192.0.2.1".parse().unwrap()));
            writer.close();
            writer.finish();
            assert_eq!(
                String::from_utf8(json).unwrap(),
                format!(r#"{{"{key}":{{"{key}":"192.0.2.1"}}}}"#)
            );
        }
    }

    #[test]
    fn string_fields_and_elements_of_every_short_length_match_serde_json() {
        // Every length the one- and two-chunk writes take (0..=32) and a
        // few the general path takes, each plain, with a byte to escape at
        // either end, and with a non-ASCII character; after a first field
        // and without one; keys short and long; each case.
        let mut values: Vec<Vec<u8>> = Vec::new();
        for len in 0..=40 {
            let plain: Vec<u8> = (0..len).map(|i| b"aZ09-.:@;~ x"[i % 12]).collect();
            values.push(plain.clone());
            if len > 0 {
                for (at, byte) in [(0, b'"'), (len - 1, b'\\'), (len / 2, b'\n')] {
                    let mut special = plain.clone();
                    special[at] = byte;
                    values.push(special);
                }
                let mut accented = plain.clone();
                accented.truncate(len - 1);
                accented.extend_from_slice("\u{e9}".as_bytes());
                values.push(accented);
            }
        }
        let fold = |text: &str, case: Case| match case {
            Case::AsIs => text.to_string(),
            Case::Lower => text.to_ascii_lowercase(),
            Case::Upper => text.to_ascii_uppercase(),
        };
        for value in &values {
            let text = std::str::from_utf8(value).unwrap();
            for key in ["k", "user_agent", "a_key_longer_than_sixteen"] {
                for case in [Case::AsIs, Case::Lower, Case::Upper] {
                    for first in [false, true] {
                        let mut json = Vec::new();
                        let mut writer = JsonWriter::new(&mut json);
                        if first {
                            writer.ascii("type", "sip");
                        }
                        match case {
                            Case::AsIs => writer.str(key, value),
                            Case::Lower => writer.str_lower(key, value),
                            Case::Upper => writer.str_upper(key, value),
                        }
                        writer.open_array("list");
                        writer.element(value, case);
                        writer.element(value, case);
                        writer.close_array();
                        writer.finish();
                        let folded = serde_json::to_string(&fold(text, case)).unwrap();
                        let head = if first { r#""type":"sip","# } else { "" };
                        assert_eq!(
                            String::from_utf8(json).unwrap(),
                            format!(r#"{{{head}"{key}":{folded},"list":[{folded},{folded}]}}"#),
                            "{text:?} {case:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn invalid_utf8_becomes_replacement_character() {
        let mut json = Vec::new();
        let mut writer = JsonWriter::new(&mut json);
        writer.str("k", b"a\xffb");
        writer.finish();
        let parsed: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(parsed["k"], "a\u{fffd}b");
    }

    #[test]
    fn nested_objects_and_arrays() {
        let mut json = b"before ".to_vec();
        let mut writer = JsonWriter::new(&mut json);
        writer.str_upper("method", b"invite");
        writer.open("sip");
        writer.u64("code", 200);
        writer.open_array("allow");
        writer.element(b"INVITE", Case::Lower);
        writer.element(b"ACK", Case::Lower);
        writer.close_array();
        writer.close();
        writer.ip("ip", &QuotedIp::new(&"2001:db8::1".parse().unwrap()));
        writer.open_array("ips");
        writer.ip_element(&QuotedIp::new(&"192.0.2.255".parse().unwrap()));
        writer.close_array();
        writer.finish();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"before {"method":"INVITE","sip":{"code":200,"allow":["invite","ack"]},"ip":"2001:db8::1","ips":["192.0.2.255"]}"#
        );
    }
}
