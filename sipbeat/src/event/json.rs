//! One JSON object, written field by field into a reused buffer.
//!
//! [`JsonWriter`] knows nothing of field meaning: it writes keys the caller
//! guarantees are plain ASCII, and escapes every value. Invalid UTF-8 in a
//! value (SIP is bytes) becomes U+FFFD, as in Beats. Escaping scans sixteen
//! bytes at a time (SSE2; eight with word tricks elsewhere), checks UTF-8 in
//! the same pass and copies clean runs whole, which is what makes JSON
//! output cheap next to parsing (see `benches/pipeline.rs`).

use std::net::IpAddr;

/// Builds JSON text in a buffer that is cleared, not freed, between events.
#[derive(Debug, Default)]
pub struct JsonWriter {
    buf: Vec<u8>,
    /// Whether the next key or element needs a comma before it.
    needs_comma: bool,
}

impl JsonWriter {
    /// A writer whose buffer starts with `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> JsonWriter {
        JsonWriter {
            buf: Vec::with_capacity(capacity),
            needs_comma: false,
        }
    }

    /// Clears the buffer and opens the top-level object.
    pub fn begin(&mut self) {
        self.buf.clear();
        self.buf.push(b'{');
        self.needs_comma = false;
    }

    /// Closes the top-level object; returns the finished JSON text.
    pub fn finish(&mut self) -> &[u8] {
        self.buf.push(b'}');
        &self.buf
    }

    /// The text written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Writes `"key":`. `key` must need no escaping.
    #[inline]
    pub fn key(&mut self, key: &str) {
        if self.needs_comma {
            self.buf.push(b',');
        }
        self.buf.push(b'"');
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(b"\":");
        self.needs_comma = true;
    }

    /// Opens a nested object under `key`.
    pub fn open(&mut self, key: &str) {
        self.key(key);
        self.buf.push(b'{');
        self.needs_comma = false;
    }

    /// Closes the innermost object or array.
    pub fn close(&mut self) {
        self.buf.push(b'}');
        self.needs_comma = true;
    }

    /// Opens an array under `key`.
    pub fn open_array(&mut self, key: &str) {
        self.key(key);
        self.buf.push(b'[');
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
        self.key(key);
        self.string(value, Case::AsIs);
    }

    /// `"key":"value"` with ASCII letters lower-cased.
    pub fn str_lower(&mut self, key: &str, value: &[u8]) {
        self.key(key);
        self.string(value, Case::Lower);
    }

    /// `"key":"value"` with ASCII letters upper-cased.
    pub fn str_upper(&mut self, key: &str, value: &[u8]) {
        self.key(key);
        self.string(value, Case::Upper);
    }

    /// `"key":"value"` for a value known to need no escaping (a constant).
    #[inline]
    pub fn ascii(&mut self, key: &str, value: &'static str) {
        self.key(key);
        self.buf.push(b'"');
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.push(b'"');
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

    /// The members written since `begin`, without the opening brace: a
    /// fragment for [`JsonWriter::members`].
    pub fn members_written(&self) -> &[u8] {
        &self.buf[1..]
    }

    /// `"key":"prefix" + value`; `prefix` must need no escaping.
    pub fn str_prefixed(&mut self, key: &str, prefix: &str, value: &[u8], case: Case) {
        self.key(key);
        self.buf.push(b'"');
        self.buf.extend_from_slice(prefix.as_bytes());
        self.string_body(value, case);
        self.buf.push(b'"');
    }

    /// A string as the next array element.
    pub fn element(&mut self, value: &[u8], case: Case) {
        self.comma();
        self.string(value, case);
    }

    /// `"key":number`.
    #[inline]
    pub fn u64(&mut self, key: &str, value: u64) {
        self.key(key);
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    /// `"key":` followed by `raw`, which must already be valid JSON.
    pub fn raw(&mut self, key: &str, raw: &[u8]) {
        self.key(key);
        self.buf.extend_from_slice(raw);
    }

    /// `"key":"address"`.
    pub fn ip(&mut self, key: &str, ip: &QuotedIp) {
        self.raw(key, ip.as_bytes());
    }

    /// An address string as the next array element.
    pub fn ip_element(&mut self, ip: &QuotedIp) {
        self.comma();
        self.buf.extend_from_slice(ip.as_bytes());
    }

    fn string(&mut self, value: &[u8], case: Case) {
        self.buf.push(b'"');
        self.string_body(value, case);
        self.buf.push(b'"');
    }

    fn string_body(&mut self, value: &[u8], case: Case) {
        let mark = self.buf.len();
        if escape_into(&mut self.buf, value, case).is_err() {
            // Not UTF-8: start over with the lossy text (rare; allocates).
            self.buf.truncate(mark);
            let lossy = String::from_utf8_lossy(value);
            let done = escape_into(&mut self.buf, lossy.as_bytes(), case);
            debug_assert!(done.is_ok());
        }
    }
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
                let mut digits = itoa::Buffer::new();
                let mut at = 1;
                for (i, octet) in v4.octets().iter().enumerate() {
                    if i > 0 {
                        quoted.text[at] = b'.';
                        at += 1;
                    }
                    let octet = digits.format(*octet).as_bytes();
                    quoted.text[at..at + octet.len()].copy_from_slice(octet);
                    at += octet.len();
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

/// Appends `value` with JSON escapes, in one pass that also checks UTF-8:
/// ASCII runs are copied whole between the bytes that need escaping, and
/// the first non-ASCII byte triggers one validation of the rest.
pub fn escape_into(out: &mut Vec<u8>, value: &[u8], case: Case) -> Result<(), NotUtf8> {
    match case {
        Case::AsIs => escape_with::<AsIs>(out, value),
        Case::Lower => escape_with::<Lower>(out, value),
        Case::Upper => escape_with::<Upper>(out, value),
    }
}

/// A case mapping applied to clean runs, chosen at compile time so the
/// common as-is path is a plain copy.
trait Fold {
    fn push(out: &mut Vec<u8>, run: &[u8]);
}

struct AsIs;
struct Lower;
struct Upper;

impl Fold for AsIs {
    #[inline(always)]
    fn push(out: &mut Vec<u8>, run: &[u8]) {
        out.extend_from_slice(run);
    }
}

impl Fold for Lower {
    #[inline(always)]
    fn push(out: &mut Vec<u8>, run: &[u8]) {
        out.extend(run.iter().map(u8::to_ascii_lowercase));
    }
}

impl Fold for Upper {
    #[inline(always)]
    fn push(out: &mut Vec<u8>, run: &[u8]) {
        out.extend(run.iter().map(u8::to_ascii_uppercase));
    }
}

/// Bytes that are plain printable ASCII and need no escaping.
static PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0x20;
    while b < 0x80 {
        table[b] = b != b'"' as usize && b != b'\\' as usize;
        b += 1;
    }
    table
};

#[inline(always)]
fn escape_with<F: Fold>(out: &mut Vec<u8>, value: &[u8]) -> Result<(), NotUtf8> {
    // Most fields are short and plain (tags, hosts, numbers as text): one
    // table pass and a copy beat setting up the chunked scan.
    if value.len() < 2 * CHUNK && value.iter().all(|&b| PLAIN[usize::from(b)]) {
        F::push(out, value);
        return Ok(());
    }
    out.reserve(value.len() + 16);
    let mut clean_from = 0;
    let mut i = 0;
    // Until a non-ASCII byte shows up, everything before `i` is ASCII, so
    // `i` is a character boundary and validating `value[i..]` suffices.
    let mut validated = false;
    while i + CHUNK <= value.len() {
        let (special, high) = scan_chunk(&value[i..i + CHUNK]);
        if high != 0 && !validated {
            if std::str::from_utf8(&value[i..]).is_err() {
                return Err(NotUtf8);
            }
            validated = true;
        }
        if special == 0 {
            i += CHUNK;
            continue;
        }
        let at = i + special.trailing_zeros() as usize;
        F::push(out, &value[clean_from..at]);
        // SIP's line ends are the usual escape: write CRLF in one go.
        if value[at] == b'\r' && value.get(at + 1) == Some(&b'\n') {
            out.extend_from_slice(b"\\r\\n");
            clean_from = at + 2;
        } else {
            push_escape(out, value[at]);
            clean_from = at + 1;
        }
        i = clean_from;
    }
    if !validated
        && value[i..].iter().any(|&b| b >= 0x80)
        && std::str::from_utf8(&value[i..]).is_err()
    {
        return Err(NotUtf8);
    }
    for (offset, &b) in value[i..].iter().enumerate() {
        if b < 0x20 || b == b'"' || b == b'\\' {
            let at = i + offset;
            if at >= clean_from {
                F::push(out, &value[clean_from..at]);
                push_escape(out, b);
                clean_from = at + 1;
            }
        }
    }
    F::push(out, &value[clean_from..]);
    Ok(())
}

#[cfg(target_arch = "x86_64")]
const CHUNK: usize = 16;
#[cfg(not(target_arch = "x86_64"))]
const CHUNK: usize = 8;

/// Bit `n` of the first mask is set when byte `n` of `chunk` needs escaping
/// (`"`, `\`, below 0x20); the second mask flags bytes at or above 0x80.
#[cfg(target_arch = "x86_64")]
#[inline]
fn scan_chunk(chunk: &[u8]) -> (u32, u32) {
    use std::arch::x86_64::*;
    debug_assert_eq!(chunk.len(), CHUNK);
    // SAFETY: SSE2 is part of the x86_64 baseline; the load reads exactly
    // the 16 bytes of `chunk` (unaligned load, length checked by the caller).
    unsafe {
        let bytes = _mm_loadu_si128(chunk.as_ptr().cast());
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

/// Portable fallback: eight bytes per step with word tricks. Only the lowest
/// flagged byte is exact, which is all the caller uses.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn scan_chunk(chunk: &[u8]) -> (u32, u32) {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    let below_space = word.wrapping_sub(LO * 0x20) & !word;
    let quote = word ^ (LO * u64::from(b'"'));
    let backslash = word ^ (LO * u64::from(b'\\'));
    let mask =
        (below_space | quote.wrapping_sub(LO) & !quote | backslash.wrapping_sub(LO) & !backslash)
            & HI;
    // One bit per byte, at the byte's index.
    let compress =
        |m: u64| (0..8).fold(0u32, |acc, n| acc | (((m >> (8 * n + 7)) & 1) as u32) << n);
    (compress(mask), compress(word & HI))
}

fn push_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]),
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
    fn invalid_utf8_becomes_replacement_character() {
        let mut writer = JsonWriter::default();
        writer.begin();
        writer.str("k", b"a\xffb");
        let json = writer.finish().to_vec();
        let parsed: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(parsed["k"], "a\u{fffd}b");
    }

    #[test]
    fn nested_objects_and_arrays() {
        let mut writer = JsonWriter::default();
        writer.begin();
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
        let json = writer.finish().to_vec();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"method":"INVITE","sip":{"code":200,"allow":["invite","ack"]},"ip":"2001:db8::1","ips":["192.0.2.255"]}"#
        );
    }
}
