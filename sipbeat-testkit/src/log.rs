//! Reading what sipbeat writes to stderr: its counters (`name=value`) and
//! the counts of its summary line (`…, 81 SIP messages, 87 events, …`).

/// The latest value of the counter `name` in a sipbeat log (its
/// `name=value` text), if any.
pub fn counter_in(log: &str, name: &str) -> Option<u64> {
    let key = format!("{name}=");
    log.lines().rev().find_map(|line| {
        let at = line
            .match_indices(&key)
            .find(|(at, _)| {
                *at == 0
                    || !line.as_bytes()[at - 1].is_ascii_alphanumeric()
                        && line.as_bytes()[at - 1] != b'_'
            })?
            .0
            + key.len();
        line[at..].split_whitespace().next()?.parse().ok()
    })
}

/// The latest summary count of `what` (`events`, `SIP messages`) in a
/// sipbeat log, if any.
pub fn summary_count(log: &str, what: &str) -> Option<u64> {
    log.lines().rev().find_map(|line| {
        line.split(", ")
            .find_map(|part| part.strip_suffix(what)?.strip_suffix(' ')?.parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_values_are_read() {
        let log = "sipbeat: 3 frames (9 bytes), 2 SIP messages, 2 events, 0.1s\n\
                   sipbeat: kafka: enqueued=2 failed=0 dropped_queue_full=1\n\
                   sipbeat: 5 frames (19 bytes), 4 SIP messages, 5 events, 0.2s\n";
        assert_eq!(summary_count(log, "events"), Some(5));
        assert_eq!(summary_count(log, "SIP messages"), Some(4));
        assert_eq!(counter_in(log, "queue_full"), None);
        assert_eq!(counter_in(log, "dropped_queue_full"), Some(1));
        assert_eq!(counter_in(log, "enqueued"), Some(2));
    }
}
