//! Repeated messages said once, then at most once a period with how many
//! were held back: a broker outage or a stream of refused events must not
//! flood stderr (or a cluster's log pipeline) with one line per event.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one message is repeated at most.
pub const PERIOD: Duration = Duration::from_secs(10);

/// Rate limits messages by their text; shareable across threads.
#[derive(Debug, Default)]
pub struct Limiter {
    /// Per message: when it was last written, and repeats held back since.
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

/// Messages remembered at most; beyond it the map starts afresh.
const MAX_MESSAGES: usize = 256;

impl Limiter {
    /// The line to write for `message` now, if any: the message itself the
    /// first time, then once a [`PERIOD`] with the count held back.
    pub fn check(&self, message: &str, now: Instant) -> Option<String> {
        let mut seen = self.seen.lock().expect("not poisoned");
        if seen.len() >= MAX_MESSAGES && !seen.contains_key(message) {
            seen.clear();
        }
        match seen.get_mut(message) {
            None => {
                seen.insert(message.to_string(), (now, 0));
                Some(message.to_string())
            }
            Some((last, held)) if now.duration_since(*last) >= PERIOD => {
                let line = if *held > 0 {
                    format!(
                        "{message} (and {held} more times in the last {}s)",
                        now.duration_since(*last).as_secs()
                    )
                } else {
                    message.to_string()
                };
                *last = now;
                *held = 0;
                Some(line)
            }
            Some((_, held)) => {
                *held += 1;
                None
            }
        }
    }

    /// Writes `message` to stderr unless it is being held back.
    pub fn eprint(&self, message: &str) {
        if let Some(line) = self.check(message, Instant::now()) {
            eprintln!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_then_once_a_period_with_the_count() {
        let limiter = Limiter::default();
        let t0 = Instant::now();
        assert_eq!(
            limiter.check("broker down", t0).as_deref(),
            Some("broker down")
        );
        for i in 1..=57 {
            assert_eq!(
                limiter.check("broker down", t0 + Duration::from_millis(i)),
                None
            );
        }
        assert_eq!(limiter.check("other", t0).as_deref(), Some("other"));
        let later = limiter.check("broker down", t0 + PERIOD).unwrap();
        assert_eq!(later, "broker down (and 57 more times in the last 10s)");
        assert_eq!(
            limiter
                .check("broker down", t0 + PERIOD + PERIOD)
                .as_deref(),
            Some("broker down")
        );
    }
}
