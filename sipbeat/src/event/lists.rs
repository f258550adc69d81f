//! Lists written once per distinct value and reused: token lists
//! (`sip.allow`, `sip.supported`) and an SDP media section's `formats` and
//! `rtpmap`.
//!
//! A network has few of these values: every phone of a model and every
//! trunk of an SBC sends the same Allow and Supported headers, byte for byte
//! (the public captures in `../shared/corpus` hold 248 Allow headers with 24
//! distinct values), and offers the same codecs in the same lines. Writing
//! a list costs a split, a case fold and an escape per element — over 200
//! instructions each, a tenth of an INVITE's event — while a cached one is
//! a compare and a copy. The cached text depends only on the key, so a hit
//! writes exactly what a miss would.

use super::json::JsonWriter;
use super::slots::Slots;

/// Slots of the cache.
const SLOTS: usize = 32;

/// Longer values are written every time: a list that long is rare, and the
/// cache's memory stays bounded (a slot holds at most this much value and
/// the couple of kilobytes of JSON it can become).
pub const MAX_VALUE: usize = 256;

/// A direct-mapped cache of written lists, keyed by field and header value
/// (see `event/slots.rs`).
#[derive(Debug, Default)]
pub struct ListCache {
    slots: Slots<Entry, SLOTS>,
}

struct Entry {
    key: &'static str,
    value: Vec<u8>,
    /// What the writer wrote for `value`: `"key":[...]`, or nothing.
    members: Vec<u8>,
}

impl ListCache {
    /// The members `write` writes for field `key` from a header holding
    /// `value` (at most [`MAX_VALUE`] bytes), from the cache or written
    /// now. `write` must depend on nothing but `key` and `value`.
    pub fn members(
        &mut self,
        key: &'static str,
        value: &[u8],
        write: impl FnOnce(&mut JsonWriter<'_>),
    ) -> &[u8] {
        debug_assert!(value.len() <= MAX_VALUE);
        let slot = &mut self.slots[slot_of(key, value)];
        let hit = slot
            .as_ref()
            .is_some_and(|entry| entry.value == value && entry.key == key);
        if !hit {
            // The evicted entry's buffers take the new one, so they only
            // grow to the longest list seen: no allocation per miss.
            let mut entry = slot.take().unwrap_or_else(|| Entry {
                key,
                value: Vec::new(),
                members: Vec::new(),
            });
            entry.key = key;
            entry.value.clear();
            entry.value.extend_from_slice(value);
            entry.members.clear();
            JsonWriter::fragment_into(&mut entry.members, write);
            *slot = Some(entry);
        }
        &slot.as_ref().expect("filled above").members
    }
}

/// The slot of a field's value: the key, the length and the first and last
/// eight bytes hashed (values of one header differ in length or at their
/// ends).
fn slot_of(key: &str, value: &[u8]) -> usize {
    let (head, _) = crate::simd::load_words(value);
    let tail = match value.len() {
        0..=8 => 0,
        len => crate::simd::load_words(&value[len - 8..]).0,
    };
    let key_first = u64::from(key.as_bytes().first().copied().unwrap_or(0));
    let lengths = (key.len() as u64) << 24 | key_first << 16 | value.len() as u64;
    Slots::<Entry, SLOTS>::slot_of([lengths, head, tail])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::json::Case;

    fn write_lower<'v>(
        key: &'static str,
        value: &'v [u8],
    ) -> impl FnOnce(&mut JsonWriter<'_>) + 'v {
        move |w| {
            w.open_array(key);
            for element in value.split(|&b| b == b',') {
                w.element(element, Case::Lower);
            }
            w.close_array();
        }
    }

    #[test]
    fn cached_lists_are_those_of_the_value_asked_for() {
        let mut cache = ListCache::default();
        // More values than slots, of equal and different lengths, so that
        // entries collide and evict each other.
        let values: Vec<Vec<u8>> = (0..4 * SLOTS)
            .map(|n| format!("INVITE,ACK,X{n}").into_bytes())
            .chain((0..SLOTS).map(|n| format!("timer,{}", "r".repeat(n)).into_bytes()))
            .collect();
        for round in 0..2 {
            for (i, value) in values.iter().enumerate() {
                let key = if i % 3 == 0 { "allow" } else { "supported" };
                let cached = cache.members(key, value, write_lower(key, value)).to_vec();
                let fresh = JsonWriter::fragment(write_lower(key, value));
                assert_eq!(
                    cached,
                    fresh,
                    "round {round}, {}",
                    String::from_utf8_lossy(value)
                );
            }
        }
    }

    #[test]
    fn a_hit_does_not_write_again() {
        let mut cache = ListCache::default();
        let value = b"INVITE,ACK,BYE";
        let first = cache
            .members("allow", value, write_lower("allow", value))
            .to_vec();
        let again = cache.members("allow", value, |_| panic!("written although cached"));
        assert_eq!(again, first);
    }

    #[test]
    fn the_same_value_for_another_field_is_another_entry() {
        let mut cache = ListCache::default();
        // A value both fields hash to the same slot.
        let value = (0..)
            .map(|n| format!("INVITE,X{n}").into_bytes())
            .find(|v| slot_of("allow", v) == slot_of("supported", v))
            .unwrap();
        cache.members("allow", &value, write_lower("allow", &value));
        let other = cache.members("supported", &value, write_lower("supported", &value));
        assert!(other.starts_with(br#""supported":["#), "{other:?}");
    }

    #[test]
    fn slots_spread() {
        let mut used = [false; SLOTS];
        for n in 0..SLOTS {
            let value = format!("INVITE, ACK, BYE, CANCEL, OPTIONS{}", "x".repeat(n));
            used[slot_of("allow", value.as_bytes())] = true;
        }
        assert!(used.iter().filter(|&&u| u).count() > SLOTS / 2);
    }
}
