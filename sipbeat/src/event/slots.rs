//! Storage of the direct-mapped caches of written event text ([`super::flow`],
//! [`super::lists`]): a fixed number of slots picked by a multiplicative
//! hash of the key. A collision evicts, so no stream of keys can make a
//! cache grow, and the caches need no defence against chosen collisions:
//! an evicted entry only costs writing its text again.

use std::ops::{Index, IndexMut};

/// `N` slots (a power of two), each empty or holding one entry.
pub struct Slots<T, const N: usize> {
    slots: Box<[Option<T>]>,
}

impl<T, const N: usize> Slots<T, N> {
    /// The slot of a key, from words that together tell keys apart: much
    /// cheaper than SipHash, which defends against collisions nobody here
    /// needs defending against.
    #[inline]
    pub fn slot_of(words: impl IntoIterator<Item = u64>) -> usize {
        const MIX: u64 = 0x9e37_79b9_7f4a_7c15;
        const { assert!(N.is_power_of_two(), "a power of two of slots") };
        let hash = words.into_iter().fold(0u64, |hash, word| {
            (hash ^ word).wrapping_mul(MIX).rotate_left(26)
        });
        (hash.wrapping_mul(MIX) >> (64 - N.trailing_zeros())) as usize
    }
}

impl<T, const N: usize> Default for Slots<T, N> {
    fn default() -> Self {
        Slots {
            slots: (0..N).map(|_| None).collect(),
        }
    }
}

impl<T, const N: usize> std::fmt::Debug for Slots<T, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let filled = self.slots.iter().filter(|s| s.is_some()).count();
        f.debug_struct("Slots")
            .field("filled", &filled)
            .field("of", &N)
            .finish()
    }
}

impl<T, const N: usize> Index<usize> for Slots<T, N> {
    type Output = Option<T>;

    fn index(&self, slot: usize) -> &Option<T> {
        &self.slots[slot]
    }
}

impl<T, const N: usize> IndexMut<usize> for Slots<T, N> {
    fn index_mut(&mut self, slot: usize) -> &mut Option<T> {
        &mut self.slots[slot]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_over_the_slots() {
        const N: usize = 64;
        // Keys that differ in one word, by small steps, as ports and
        // lengths do.
        for fixed in [0, 0x0a00_0001, u64::MAX] {
            let mut used = [false; N];
            for n in 0..N as u64 {
                used[Slots::<(), N>::slot_of([fixed, 5060 + n])] = true;
            }
            // A perfect spread fills 63 % of the slots with N random keys.
            assert!(used.iter().filter(|&&u| u).count() > N / 2, "{fixed}");
        }
    }

    #[test]
    fn debug_counts_the_filled_slots() {
        let mut slots = Slots::<u8, 4>::default();
        slots[1] = Some(7);
        assert_eq!(format!("{slots:?}"), "Slots { filled: 1, of: 4 }");
    }
}
