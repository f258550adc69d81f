//! Byte-vector helpers shared by the SIP scanner and the JSON escaper.

/// The first sixteen bytes of `bytes` as two little-endian words, zero
/// beyond its end. Short input is assembled in registers from overlapping
/// fixed-size reads: a padded copy in memory read back as a vector stalls
/// on store forwarding, and a variable-length copy calls `memcpy`.
#[inline(always)]
pub fn load_words(bytes: &[u8]) -> (u64, u64) {
    let word = |at: usize| u64::from_le_bytes(*bytes[at..].first_chunk().expect("8 bytes"));
    let half = |at: usize| u32::from_le_bytes(*bytes[at..].first_chunk().expect("4 bytes"));
    let n = bytes.len();
    if n >= 16 {
        (word(0), word(8))
    } else if n >= 8 {
        // Bytes 8..n are the top n - 8 bytes of the last word.
        let high = if n == 8 {
            0
        } else {
            word(n - 8) >> (8 * (16 - n))
        };
        (word(0), high)
    } else if n >= 4 {
        let top = u64::from(half(n - 4)) >> (8 * (8 - n));
        (u64::from(half(0)) | top << 32, 0)
    } else {
        let low = bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| acc << 8 | u64::from(b));
        (low, 0)
    }
}

/// `a == b`, without a call to `memcmp` for slices of 8 to 32 bytes (the
/// host and user names `related.*` compares): overlapping word compares.
#[inline(always)]
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word =
        |bytes: &[u8], at: usize| u64::from_le_bytes(*bytes[at..].first_chunk().expect("8 bytes"));
    let differ = |at: usize| word(a, at) ^ word(b, at);
    match n {
        8..=16 => differ(0) | differ(n - 8) == 0,
        17..=32 => differ(0) | differ(8) | differ(n - 16) | differ(n - 8) == 0,
        _ => a == b,
    }
}

/// [`load_words`] as one SSE2 vector: the last, short chunk of a scan.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn load_padded(bytes: &[u8]) -> std::arch::x86_64::__m128i {
    let (low, high) = load_words(bytes);
    // SAFETY: SSE2 is part of the x86_64 baseline.
    unsafe { std::arch::x86_64::_mm_set_epi64x(high as i64, low as i64) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_eq_compares_every_byte() {
        let source: Vec<u8> = (1..=40).collect();
        for n in 0..=40 {
            let a = &source[..n];
            assert!(bytes_eq(a, a), "length {n}");
            assert!(!bytes_eq(a, &source[..n.saturating_sub(1)]) || n == 0);
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!bytes_eq(a, &b), "length {n}, byte {at}");
            }
        }
    }

    #[test]
    fn every_length_loads_exactly_its_bytes() {
        let source: Vec<u8> = (1..=20).collect();
        for n in 0..=20 {
            let (low, high) = load_words(&source[..n]);
            let mut expected = [0u8; 16];
            let kept = n.min(16);
            expected[..kept].copy_from_slice(&source[..kept]);
            let mut got = [0u8; 16];
            got[..8].copy_from_slice(&low.to_le_bytes());
            got[8..].copy_from_slice(&high.to_le_bytes());
            assert_eq!(got, expected, "length {n}");
        }
    }
}
