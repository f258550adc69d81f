//! One JSON object, written field by field into a reused buffer.
//!
//! [`JsonWriter`] knows nothing of field meaning: it writes keys the caller
//! guarantees are plain ASCII, and escapes every value. Invalid UTF-8 in a
//! value (SIP is bytes) becomes U+FFFD, as in Beats. Escaping scans eight
//! bytes at a time and copies clean runs whole, which is what makes JSON
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
        self.buf.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    /// `"key":` followed by `raw`, which must already be valid JSON.
    pub fn raw(&mut self, key: &str, raw: &[u8]) {
        self.key(key);
        self.buf.extend_from_slice(raw);
    }

    /// `"key":"address"`.
    pub fn ip(&mut self, key: &str, ip: &IpAddr) {
        self.key(key);
        self.ip_string(ip);
    }

    /// An address string as the next array element.
    pub fn ip_element(&mut self, ip: &IpAddr) {
        self.comma();
        self.ip_string(ip);
    }

    fn ip_string(&mut self, ip: &IpAddr) {
        self.buf.push(b'"');
        match ip {
            IpAddr::V4(v4) => {
                let mut digits = itoa::Buffer::new();
                for (i, octet) in v4.octets().iter().enumerate() {
                    if i > 0 {
                        self.buf.push(b'.');
                    }
                    self.buf.extend_from_slice(digits.format(*octet).as_bytes());
                }
            }
            IpAddr::V6(v6) => {
                use std::io::Write;
                // Display already yields the RFC 5952 form; no escaping needed.
                let _ = write!(self.buf, "{v6}");
            }
        }
        self.buf.push(b'"');
    }

    fn string(&mut self, value: &[u8], case: Case) {
        self.buf.push(b'"');
        self.string_body(value, case);
        self.buf.push(b'"');
    }

    fn string_body(&mut self, value: &[u8], case: Case) {
        match std::str::from_utf8(value) {
            Ok(_) => escape_into(&mut self.buf, value, case),
            Err(_) => escape_into(&mut self.buf, String::from_utf8_lossy(value).as_bytes(), case),
        }
    }
}

/// Case folding applied while a string is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    AsIs,
    Lower,
    Upper,
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `word` that needs escaping (`"`, `\`, or a
/// control character). Only the lowest flagged byte is exact, which is all
/// the caller uses.
#[inline]
fn escape_mask(word: u64) -> u64 {
    let below_space = word.wrapping_sub(LO * 0x20) & !word;
    let quote = word ^ (LO * u64::from(b'"'));
    let backslash = word ^ (LO * u64::from(b'\\'));
    (below_space | quote.wrapping_sub(LO) & !quote | backslash.wrapping_sub(LO) & !backslash) & HI
}

/// Appends `value` (valid UTF-8) with JSON escapes.
pub fn escape_into(out: &mut Vec<u8>, value: &[u8], case: Case) {
    out.reserve(value.len() + 8);
    let mut clean_from = 0;
    let mut i = 0;
    while i + 8 <= value.len() {
        let word = u64::from_le_bytes(value[i..i + 8].try_into().expect("8 bytes"));
        let mask = escape_mask(word);
        if mask == 0 {
            i += 8;
            continue;
        }
        let at = i + (mask.trailing_zeros() / 8) as usize;
        push_run(out, &value[clean_from..at], case);
        push_escape(out, value[at]);
        clean_from = at + 1;
        i = at + 1;
    }
    for (offset, &b) in value[i..].iter().enumerate() {
        if b < 0x20 || b == b'"' || b == b'\\' {
            let at = i + offset;
            push_run(out, &value[clean_from..at], case);
            push_escape(out, b);
            clean_from = at + 1;
        }
    }
    push_run(out, &value[clean_from..], case);
}

#[inline]
fn push_run(out: &mut Vec<u8>, run: &[u8], case: Case) {
    match case {
        Case::AsIs => out.extend_from_slice(run),
        Case::Lower => out.extend(run.iter().map(u8::to_ascii_lowercase)),
        Case::Upper => out.extend(run.iter().map(u8::to_ascii_uppercase)),
    }
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
        escape_into(&mut out, value, Case::AsIs);
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
                assert_eq!(format!("\"{}\"", escaped(&sample)), serde_json::to_string(text).unwrap());
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
        writer.ip("ip", &"2001:db8::1".parse().unwrap());
        let json = writer.finish().to_vec();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"method":"INVITE","sip":{"code":200,"allow":["invite","ack"]},"ip":"2001:db8::1"}"#
        );
    }
}
