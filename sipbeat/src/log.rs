//! What sipbeat says on stderr, in one of two formats, and how repeats are
//! held back.
//!
//! - [`Format`] is `text` (`sipbeat: ...` lines, for terminals; the default)
//!   or `json` (one ECS-style object per line, for cluster log pipelines),
//!   chosen once per process with [`init`].
//! - [`info`], [`warn`], [`error`] and [`stats`] write in that format.
//! - [`Limiter`]: a repeated message said once, then at most once a period
//!   with how many were held back: a broker outage or a stream of refused
//!   events must not flood stderr (or a cluster's log pipeline) with one
//!   line per event.

use std::io::Write as _;
use std::sync::OnceLock;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::event::timestamp::now_ns;

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
        self.check_as(message, message, now)
    }

    /// [`Limiter::check`] for a message whose text varies between repeats
    /// (counts, timings): repeats are those with the same `key`.
    pub fn check_as(&self, key: &str, message: &str, now: Instant) -> Option<String> {
        let mut seen = self.seen.lock().expect("not poisoned");
        if seen.len() >= MAX_MESSAGES && !seen.contains_key(key) {
            seen.clear();
        }
        match seen.get_mut(key) {
            None => {
                seen.insert(key.to_string(), (now, 0));
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

    /// Writes `message` as a warning unless it is being held back.
    pub fn warn(&self, message: &str) {
        self.warn_as(message, message);
    }

    /// Writes `message` as a warning unless a message with the same `key`
    /// is being held back.
    pub fn warn_as(&self, key: &str, message: &str) {
        if let Some(line) = self.check_as(key, message, Instant::now()) {
            warn(&line);
        }
    }
}

/// How stderr lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `sipbeat: ...` lines.
    #[default]
    Text,
    /// One JSON object per line: `@timestamp`, `log.level`, `message`
    /// (and `sipbeat.stats` for the stats line).
    Json,
}

static FORMAT: OnceLock<Format> = OnceLock::new();

/// Chooses the format for the rest of the process (the first call wins).
pub fn init(format: Format) {
    let _ = FORMAT.set(format);
}

fn format() -> Format {
    FORMAT.get().copied().unwrap_or_default()
}

#[derive(Clone, Copy)]
enum Level {
    Info,
    Warn,
    Error,
}

/// A progress or state message.
pub fn info(message: &str) {
    write(Level::Info, message, None);
}

/// Something went wrong that the run survives.
pub fn warn(message: &str) {
    write(Level::Warn, message, None);
}

/// The error a run ends with.
pub fn error(message: &str) {
    write(Level::Error, message, None);
}

/// The periodic and final counters: `text` as it reads on a terminal, and
/// the same counters as a JSON object for the JSON format.
pub fn stats(text: &str, counters: serde_json::Value) {
    match format() {
        Format::Text => emit(text.as_bytes()),
        Format::Json => write(Level::Info, "stats", Some(counters)),
    }
}

fn write(level: Level, message: &str, stats: Option<serde_json::Value>) {
    let mut line = match format() {
        Format::Text => {
            let prefix = match level {
                Level::Info => "sipbeat: ",
                Level::Warn => "sipbeat: warning: ",
                Level::Error => "sipbeat: error: ",
            };
            format!("{prefix}{message}")
        }
        Format::Json => json_line(level, message, stats, now_ns()),
    };
    line.push('\n');
    emit(line.as_bytes());
}

fn json_line(level: Level, message: &str, stats: Option<serde_json::Value>, ns: u64) -> String {
    let timestamp = crate::event::timestamp::TimestampFormatter::default().millis(ns);
    let mut object = serde_json::json!({
        "@timestamp": String::from_utf8_lossy(&timestamp),
        "log.level": match level {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        },
        "log.logger": "sipbeat",
        "message": message,
    });
    if let Some(stats) = stats {
        object["sipbeat.stats"] = stats;
    }
    object.to_string()
}

/// Writes to stderr; a closed or failing stderr is ignored, never a panic
/// (`eprintln!` would panic).
fn emit(bytes: &[u8]) {
    let _ = std::io::stderr().lock().write_all(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_are_ecs_shaped() {
        let line = json_line(
            Level::Warn,
            "kafka: \"broker\" down",
            Some(serde_json::json!({"events": 3})),
            1_480_170_584_950_000_000,
        );
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["@timestamp"], "2016-11-26T14:29:44.950Z");
        assert_eq!(value["log.level"], "warn");
        assert_eq!(value["message"], "kafka: \"broker\" down");
        assert_eq!(value["sipbeat.stats"]["events"], 3);
        assert!(!line.contains('\n'));
    }

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
        // Text that varies between repeats, one key.
        assert!(limiter.check_as("down", "1/1 down", t0).is_some());
        assert!(limiter.check_as("down", "0/1 down", t0).is_none());
    }
}
