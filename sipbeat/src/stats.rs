//! Counters for everything the pipeline sees, drops, skips or rejects.
//!
//! Each worker owns a [`Stats`] and bumps plain integers (no atomics on the
//! hot path); totals are summed with `+=` and printed by [`Stats::summary`].

/// Declares a struct of `u64` counters: each counter written once, with
/// its doc comment; from that one list come the fields, `AddAssign`, the
/// `name=value` summary text ([`line`](TcpStats::line)) and the names and
/// values an exposition walks ([`fields`](TcpStats::fields)).
#[macro_export]
macro_rules! counters {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: u64, )+
        }

        impl ::std::ops::AddAssign<&$name> for $name {
            fn add_assign(&mut self, other: &$name) {
                $( self.$field += other.$field; )+
            }
        }

        impl $name {
            /// Every counter's name and value, in declaration order.
            pub fn fields(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [$( (stringify!($field), self.$field), )+].into_iter()
            }

            /// `name=value` for every counter, space-separated.
            pub fn line(&self) -> String {
                self.fields()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        }
    };
}

use std::fmt::Write as _;
use std::ops::AddAssign;
use std::time::Duration;

use crate::decode::DecodeError;
use crate::reassemble::defrag::DefragStats;
use crate::reassemble::tcp::TcpStats;
use crate::sip;

/// Per-worker pipeline counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Frames handed to the pipeline.
    pub frames: u64,
    /// Bytes of those frames.
    pub bytes: u64,
    /// Frames skipped by the capture source (link type not decoded).
    pub unsupported_link: u64,
    /// Damaged places in capture files skipped (records of impossible
    /// length, blocks that do not parse).
    pub damaged_records: u64,
    /// Bytes of capture files skipped with them.
    pub damaged_bytes: u64,
    /// Frames that did not decode to a transport payload, by reason.
    pub decode: [u64; DecodeError::COUNT],
    /// UDP datagrams and TCP segments on no configured SIP port.
    pub other_ports: u64,
    /// On a SIP port, but over a transport the config leaves out.
    pub transport_disabled: u64,
    /// Stream bytes skipped looking for a SIP start line (after a gap, a
    /// broken message, or a capture that began mid-stream).
    pub stream_bytes_skipped: u64,
    /// TCP stream reassembly.
    pub tcp: TcpStats,
    /// IP fragment reassembly.
    pub defrag: DefragStats,
    /// Payloads on a SIP port that were not a valid SIP message, by reason.
    pub rejected: [u64; sip::Error::COUNT],
    /// Valid SIP messages.
    pub messages: u64,
    /// Events handed to the output.
    pub events: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            frames: 0,
            bytes: 0,
            unsupported_link: 0,
            damaged_records: 0,
            damaged_bytes: 0,
            decode: [0; DecodeError::COUNT],
            other_ports: 0,
            transport_disabled: 0,
            stream_bytes_skipped: 0,
            tcp: TcpStats::default(),
            defrag: DefragStats::default(),
            rejected: [0; sip::Error::COUNT],
            messages: 0,
            events: 0,
        }
    }
}

impl AddAssign<&Stats> for Stats {
    fn add_assign(&mut self, other: &Stats) {
        self.frames += other.frames;
        self.bytes += other.bytes;
        self.unsupported_link += other.unsupported_link;
        self.damaged_records += other.damaged_records;
        self.damaged_bytes += other.damaged_bytes;
        for (mine, theirs) in self.decode.iter_mut().zip(other.decode) {
            *mine += theirs;
        }
        self.other_ports += other.other_ports;
        self.transport_disabled += other.transport_disabled;
        self.stream_bytes_skipped += other.stream_bytes_skipped;
        self.tcp += &other.tcp;
        self.defrag += &other.defrag;
        for (mine, theirs) in self.rejected.iter_mut().zip(other.rejected) {
            *mine += theirs;
        }
        self.messages += other.messages;
        self.events += other.events;
    }
}

impl Stats {
    /// Counts a frame that did not decode.
    pub fn decode_error(&mut self, error: DecodeError) {
        self.decode[error.index()] += 1;
    }

    /// Counts a SIP-port payload that was not a valid message.
    pub fn rejected(&mut self, error: sip::Error) {
        self.rejected[error.index()] += 1;
    }

    /// Count for one rejection reason.
    pub fn rejected_by(&self, error: sip::Error) -> u64 {
        self.rejected[error.index()]
    }

    /// All payloads rejected, whatever the reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// Frames broken below SIP (truncated, malformed headers).
    pub fn malformed_frames(&self) -> u64 {
        DecodeError::ALL
            .iter()
            .filter(|e| e.is_malformed())
            .map(|e| self.decode[e.index()])
            .sum()
    }

    /// Every counter into `out`, each sample with `labels`.
    pub fn expose(&self, out: &mut crate::metrics::Exposition, labels: &[(&str, &str)]) {
        let scalars: [(&str, &'static str, u64); 9] = [
            ("frames", "Frames handed to the pipeline.", self.frames),
            ("frame_bytes", "Bytes of those frames.", self.bytes),
            (
                "unsupported_link_frames",
                "Frames whose link type is not decoded.",
                self.unsupported_link,
            ),
            (
                "damaged_capture_records",
                "Damaged places skipped in capture files.",
                self.damaged_records,
            ),
            (
                "other_ports",
                "UDP datagrams and TCP segments on no SIP port.",
                self.other_ports,
            ),
            (
                "transport_disabled",
                "SIP-port traffic over a transport the config leaves out.",
                self.transport_disabled,
            ),
            (
                "stream_bytes_skipped",
                "TCP bytes skipped looking for a SIP start line.",
                self.stream_bytes_skipped,
            ),
            ("messages", "Valid SIP messages.", self.messages),
            ("events", "Events handed to the output.", self.events),
        ];
        for (name, help, value) in scalars {
            out.counter(name, help, labels, value);
        }
        let with_reason = |reason| {
            let mut all = labels.to_vec();
            all.push(("reason", reason));
            all
        };
        for error in DecodeError::ALL {
            out.counter(
                "decode_errors",
                "Frames that did not decode to a transport payload, by reason.",
                &with_reason(error.label()),
                self.decode[error.index()],
            );
        }
        for error in sip::Error::ALL {
            out.counter(
                "rejected",
                "SIP-port payloads that were not a valid SIP message, by reason.",
                &with_reason(error.label()),
                self.rejected[error.index()],
            );
        }
        for (name, value) in self.tcp.fields() {
            out.counter(
                &format!("tcp_{name}"),
                "TCP stream reassembly: the summary's tcp: counter of this name.",
                labels,
                value,
            );
        }
        for (name, value) in self.defrag.fields() {
            out.counter(
                &format!("ip_fragments_{name}"),
                "IP reassembly: the summary's ip fragments: counter of this name.",
                labels,
                value,
            );
        }
    }

    /// Human-readable totals, one line per group, for the end of a run.
    pub fn summary(&self, elapsed: Duration) -> String {
        let seconds = elapsed.as_secs_f64();
        let rate = if seconds > 0.0 {
            self.messages as f64 / seconds
        } else {
            0.0
        };
        let mut out = format!(
            "sipbeat: {} frames ({} bytes), {} SIP messages, {} events, {:.3}s, {:.0} messages/s\n",
            self.frames, self.bytes, self.messages, self.events, seconds, rate
        );
        let decode = labelled(
            DecodeError::ALL
                .iter()
                .map(|e| (e.label(), self.decode[e.index()])),
        );
        let damaged = labelled(
            [
                ("damaged_records", self.damaged_records),
                ("damaged_bytes", self.damaged_bytes),
            ]
            .into_iter(),
        );
        let _ = writeln!(
            out,
            "sipbeat: skipped: other_ports={} transport_disabled={} unsupported_link={}{damaged}{}",
            self.other_ports, self.transport_disabled, self.unsupported_link, decode
        );
        let _ = writeln!(
            out,
            "sipbeat: tcp: {} bytes_skipped={}",
            self.tcp.line(),
            self.stream_bytes_skipped
        );
        let _ = writeln!(out, "sipbeat: ip fragments: {}", self.defrag.line());
        let rejected = labelled(
            sip::Error::ALL
                .iter()
                .map(|e| (e.label(), self.rejected[e.index()])),
        );
        let _ = writeln!(
            out,
            "sipbeat: rejected: {}{}",
            self.rejected_total(),
            rejected
        );
        out
    }
}

fn labelled<'a>(counts: impl Iterator<Item = (&'a str, u64)>) -> String {
    counts
        .filter(|&(_, n)| n > 0)
        .map(|(label, n)| format!(" {label}={n}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_assign_sums_every_counter() {
        let mut a = Stats {
            frames: 2,
            ..Stats::default()
        };
        a.decode_error(DecodeError::NotIp);
        a.rejected(sip::Error::NotSip);
        let mut b = a.clone();
        b.events = 5;
        b += &a;
        assert_eq!(b.frames, 4);
        assert_eq!(b.decode[DecodeError::NotIp.index()], 2);
        assert_eq!(b.rejected_by(sip::Error::NotSip), 2);
        assert_eq!(b.events, 5);
        assert!(b.summary(Duration::from_secs(1)).contains("not_sip=2"));
    }
}
