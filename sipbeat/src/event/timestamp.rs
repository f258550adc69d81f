//! Capture timestamps as RFC 3339 text, the way Elasticsearch parses them.

use super::json::eight_digits;

/// The wall clock, nanoseconds since the Unix epoch (how live frames are
/// stamped, and log lines and the disk queue's segments too).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Formats nanoseconds since the Unix epoch, caching the date and time of
/// the last second seen (consecutive packets nearly always share it).
#[derive(Debug, Default)]
pub struct TimestampFormatter {
    cached_second: Option<u64>,
    /// `YYYY-MM-DDTHH:MM` of `cached_second`.
    cached_head: [u8; 16],
    /// `:SS.` of `cached_second` in the low four bytes of a word.
    cached_seconds: u64,
}

impl TimestampFormatter {
    /// `2016-11-26T14:29:44.950Z`: millisecond precision, as Beats' `@timestamp`.
    pub fn millis(&mut self, ns: u64) -> [u8; 24] {
        let (head, seconds) = self.second(ns / 1_000_000_000);
        // The last three of eight digits, then `Z`.
        let millis = eight_digits(((ns / 1_000_000) % 1000) as u32) >> 40 | u64::from(b'Z') << 24;
        // Built from a 16-byte and an 8-byte word: the copies into the
        // event load it in those two pieces, and a load that spans stores
        // of other sizes waits for them to reach the cache.
        let tail = seconds | millis << 32;
        let mut out = [0u8; 24];
        out[..16].copy_from_slice(&head);
        out[16..].copy_from_slice(&tail.to_le_bytes());
        out
    }

    /// `2016-11-26T14:29:44.950123456Z`: nanosecond precision, for `date_nanos`.
    pub fn nanos(&mut self, ns: u64) -> [u8; 30] {
        let (head, seconds) = self.second(ns / 1_000_000_000);
        let fraction = (ns % 1_000_000_000) as u32;
        let first = u64::from(b'0' + (fraction / 100_000_000) as u8);
        let rest = eight_digits(fraction % 100_000_000);
        // As in `millis`, whole words: `:SS.` and four digits, then five
        // digits and `Z`.
        let middle = seconds | first << 32 | rest << 40;
        let last = rest >> 24 | u64::from(b'Z') << 40;
        let mut out = [0u8; 30];
        out[..16].copy_from_slice(&head);
        out[16..24].copy_from_slice(&middle.to_le_bytes());
        out[24..].copy_from_slice(&last.to_le_bytes()[..6]);
        out
    }

    /// `YYYY-MM-DDTHH:MM` and `:SS.` as a word, for `second`.
    fn second(&mut self, second: u64) -> ([u8; 16], u64) {
        if self.cached_second != Some(second) {
            let [head @ .., colon, tens, ones] = format_second(second);
            self.cached_second = Some(second);
            self.cached_head = head;
            self.cached_seconds = u64::from(u32::from_le_bytes([colon, tens, ones, b'.']));
        }
        (self.cached_head, self.cached_seconds)
    }
}

fn write_digits(out: &mut [u8], mut value: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// `YYYY-MM-DDTHH:MM:SS` for seconds since the epoch (proleptic Gregorian).
fn format_second(second: u64) -> [u8; 19] {
    let days = (second / 86_400) as i64;
    let in_day = second % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"0000-00-00T00:00:00";
    write_digits(&mut out[0..4], year.clamp(0, 9999) as u64);
    write_digits(&mut out[5..7], u64::from(month));
    write_digits(&mut out[8..10], u64::from(day));
    write_digits(&mut out[11..13], in_day / 3600);
    write_digits(&mut out[14..16], in_day / 60 % 60);
    write_digits(&mut out[17..19], in_day % 60);
    out
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        let mut formatter = TimestampFormatter::default();
        assert_eq!(&formatter.millis(0), b"1970-01-01T00:00:00.000Z");
        assert_eq!(
            &formatter.nanos(1_480_172_984_950_123_456),
            b"2016-11-26T15:09:44.950123456Z"
        );
        assert_eq!(
            &formatter.millis(951_782_400_000_000_000),
            b"2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            &formatter.millis(4_102_444_799_999_000_000),
            b"2099-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn every_fraction_digit_is_written() {
        let mut formatter = TimestampFormatter::default();
        let second = 1_700_000_000_000_000_000;
        let mut fraction = 1u64;
        while fraction < 1_000_000_000 {
            for ns in [
                fraction,
                fraction - 1,
                999_999_999 - fraction,
                fraction * 7 % 1_000_000_000,
            ] {
                let nanos = formatter.nanos(second + ns);
                assert_eq!(&nanos[20..29], format!("{ns:09}").as_bytes(), "{ns}");
                let millis = formatter.millis(second + ns);
                assert_eq!(
                    &millis[20..23],
                    format!("{:03}", ns / 1_000_000).as_bytes(),
                    "{ns}"
                );
            }
            fraction = fraction * 10 + fraction % 7 + 1;
        }
    }
}
