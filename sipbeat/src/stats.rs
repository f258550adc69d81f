//! Counters for everything the pipeline sees, drops, skips or rejects.
//!
//! Each worker owns a [`Stats`] and bumps plain integers (no atomics on the
//! hot path); totals are summed with `+=` and printed by [`Stats::summary`].

/// Declares a struct of `u64` counters: each counter written once, with
/// its doc comment (required: it is also the metric's help text); from that
/// one list come the fields, `AddAssign`, the `name=value` summary text
/// ([`line`](TcpStats::line)) and the names, help texts and values an
/// exposition walks ([`fields`](TcpStats::fields),
/// [`described`](TcpStats::described)).
#[macro_export]
macro_rules! counters {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[doc = $doc:literal])+ $field:ident, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[doc = $doc])+ pub $field: u64, )+
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

            /// Every counter's name, doc text and value, in declaration order.
            pub fn described(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> {
                [$( (stringify!($field), concat!($($doc),+).trim_start(), self.$field), )+]
                    .into_iter()
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
use crate::track::call::CallStats;
use crate::track::kpi::Kpis;
use crate::track::transaction::TransactionStats;

crate::counters! {
    /// The pipeline's scalar counters.
    pub struct Counts {
        /// Frames handed to the pipeline.
        frames,
        /// Bytes of those frames.
        frame_bytes,
        /// Frames whose link type is not decoded (skipped by the source).
        unsupported_link_frames,
        /// Damaged places skipped in capture files (records of impossible
        /// length, blocks that do not parse) and host-ring records too short
        /// for their header.
        damaged_records,
        /// Bytes of capture files skipped with them.
        damaged_bytes,
        /// UDP datagrams and TCP segments on no configured SIP port.
        other_ports,
        /// On a SIP port, but over a transport the config leaves out.
        transport_disabled,
        /// Stream bytes skipped looking for a SIP start line (after a gap, a
        /// broken message, or a capture that began mid-stream).
        stream_bytes_skipped,
        /// Valid SIP messages (counted by the worker that tracks them).
        messages,
        /// Messages handed to the worker that owns their Call-ID (live,
        /// several queues).
        handed_over,
        /// Messages kept by the worker that parsed them because the owner's
        /// inbox was full: tracked apart from the rest of their call.
        kept_inbox_full,
        /// Events handed to the output.
        events,
    }
}

/// Per-worker pipeline counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    pub counts: Counts,
    /// Frames that did not decode to a transport payload, by reason.
    pub decode: [u64; DecodeError::COUNT],
    /// TCP stream reassembly.
    pub tcp: TcpStats,
    /// IP fragment reassembly.
    pub defrag: DefragStats,
    /// Transaction tracking.
    pub transactions: TransactionStats,
    /// Call tracking.
    pub calls: CallStats,
    /// Requests, responses and INVITE outcomes (RFC 6076 KPIs).
    pub kpis: Kpis,
    /// Payloads on a SIP port that were not a valid SIP message, by reason.
    pub rejected: [u64; sip::Error::COUNT],
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            counts: Counts::default(),
            decode: [0; DecodeError::COUNT],
            tcp: TcpStats::default(),
            defrag: DefragStats::default(),
            transactions: TransactionStats::default(),
            calls: CallStats::default(),
            kpis: Kpis::default(),
            rejected: [0; sip::Error::COUNT],
        }
    }
}

impl AddAssign<&Stats> for Stats {
    fn add_assign(&mut self, other: &Stats) {
        self.counts += &other.counts;
        for (mine, theirs) in self.decode.iter_mut().zip(other.decode) {
            *mine += theirs;
        }
        self.tcp += &other.tcp;
        self.defrag += &other.defrag;
        self.transactions += &other.transactions;
        self.calls += &other.calls;
        self.kpis += &other.kpis;
        for (mine, theirs) in self.rejected.iter_mut().zip(other.rejected) {
            *mine += theirs;
        }
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
        for (name, help, value) in self.counts.described() {
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
        for (name, help, value) in self.tcp.described() {
            out.counter(&format!("tcp_{name}"), help, labels, value);
        }
        for (name, help, value) in self.defrag.described() {
            out.counter(&format!("ip_fragments_{name}"), help, labels, value);
        }
        for (name, help, value) in self.transactions.described() {
            out.counter(&format!("transactions_{name}"), help, labels, value);
        }
        for (name, help, value) in self.calls.described() {
            out.counter(&format!("calls_{name}"), help, labels, value);
        }
        self.kpis.expose(out, labels);
    }

    /// Every counter as JSON, grouped as in the summary: for the JSON log
    /// format.
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = json_object(self.counts.fields());
        json["decode_errors"] = json_object(
            DecodeError::ALL
                .iter()
                .map(|e| (e.label(), self.decode[e.index()])),
        );
        json["tcp"] = json_object(self.tcp.fields());
        json["ip_fragments"] = json_object(self.defrag.fields());
        json["transactions"] = json_object(self.transactions.fields());
        json["calls"] = json_object(self.calls.fields());
        json["kpi"] = self.kpis.to_json();
        json["rejected"] = json_object(
            sip::Error::ALL
                .iter()
                .map(|e| (e.label(), self.rejected[e.index()])),
        );
        json
    }

    /// Human-readable totals, one line per group, for the end of a run.
    pub fn summary(&self, elapsed: Duration) -> String {
        let c = &self.counts;
        let seconds = elapsed.as_secs_f64();
        let rate = if seconds > 0.0 {
            c.messages as f64 / seconds
        } else {
            0.0
        };
        let mut out = format!(
            "sipbeat: {} frames ({} bytes), {} SIP messages, {} events, {:.3}s, {:.0} messages/s\n",
            c.frames, c.frame_bytes, c.messages, c.events, seconds, rate
        );
        let decode = labelled(
            DecodeError::ALL
                .iter()
                .map(|e| (e.label(), self.decode[e.index()])),
        );
        let _ = writeln!(
            out,
            "sipbeat: skipped: other_ports={} transport_disabled={} unsupported_link_frames={}{}{decode}",
            c.other_ports,
            c.transport_disabled,
            c.unsupported_link_frames,
            labelled(
                [
                    ("damaged_records", c.damaged_records),
                    ("damaged_bytes", c.damaged_bytes),
                ]
                .into_iter()
            ),
        );
        let _ = writeln!(
            out,
            "sipbeat: tcp: {} stream_bytes_skipped={}",
            self.tcp.line(),
            c.stream_bytes_skipped
        );
        let _ = writeln!(out, "sipbeat: ip fragments: {}", self.defrag.line());
        if c.handed_over + c.kept_inbox_full > 0 {
            let _ = writeln!(
                out,
                "sipbeat: workers: handed_over={} kept_inbox_full={}",
                c.handed_over, c.kept_inbox_full
            );
        }
        let _ = writeln!(out, "sipbeat: transactions: {}", self.transactions.line());
        let _ = writeln!(out, "sipbeat: calls: {}", self.calls.line());
        let _ = writeln!(out, "sipbeat: kpi: {}", self.kpis.line());
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

/// `{"name": value, ...}`: counters as a JSON object, for the JSON log
/// format.
pub fn json_object<'a>(counters: impl IntoIterator<Item = (&'a str, u64)>) -> serde_json::Value {
    serde_json::Value::Object(
        counters
            .into_iter()
            .map(|(name, value)| (name.to_string(), value.into()))
            .collect(),
    )
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
        let mut a = Stats::default();
        a.counts.frames = 2;
        a.decode_error(DecodeError::NotIp);
        a.rejected(sip::Error::NotSip);
        let mut b = a.clone();
        b.counts.events = 5;
        b += &a;
        assert_eq!(b.counts.frames, 4);
        assert_eq!(b.decode[DecodeError::NotIp.index()], 2);
        assert_eq!(b.rejected_by(sip::Error::NotSip), 2);
        assert_eq!(b.counts.events, 5);
        assert!(b.summary(Duration::from_secs(1)).contains("not_sip=2"));
        let json = b.to_json();
        assert_eq!(json["frames"], 4);
        assert_eq!(json["rejected"]["not_sip"], 2);
        assert_eq!(json["tcp"]["gaps"], 0);
    }
}
