//! Counters behind the RFC 6076 session KPIs: requests by method, responses
//! by the method they answer and their class, and the outcomes of INVITE
//! transactions (their first final response), from which
//!
//! - SER  = INVITEs answered 2xx / (INVITEs − those answered 3xx),
//! - SEER = INVITEs answered 200, 480, 486, 600 or 603 / (INVITEs − 3xx),
//! - ISA  = INVITEs answered 408, 500, 503 or 504 / INVITEs
//!
//! follow (in the summary, or as PromQL over `/metrics`). Retransmissions
//! are not counted again. From call records come
//!
//! - calls by how they ended (`sip.call.state`),
//! - SCR = calls answered and hung up normally / calls,
//! - SRD: INVITE → its first 180/183 or final response, a histogram,
//! - SDD: BYE → its final response, a histogram.

use std::fmt::Write as _;

use crate::sip::{Message, StartLine};
use crate::track::call::{CallRecord, CallState};
use crate::track::transaction::Seen;

/// Methods counted by name; any other is `other`.
pub const METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "MESSAGE",
    "INFO",
    "PRACK",
    "UPDATE",
    "REFER",
];
const OTHER: usize = METHODS.len();
const LABELS: usize = METHODS.len() + 1;

/// Response classes 1xx to 6xx.
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// Outcomes of INVITE transactions by their first final response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InviteOutcomes {
    /// Any 2xx.
    pub answered: u64,
    /// 3xx: left out of SER's and SEER's denominators.
    pub redirected: u64,
    /// 200, 480, 486, 600, 603: the session was effectively handled (SEER).
    pub effective: u64,
    /// 408, 500, 503, 504: ineffective attempts (ISA).
    pub ineffective: u64,
}

/// Upper bounds of the delay histograms' buckets, in seconds.
pub const DELAY_BOUNDS: [f64; 11] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// Delays observed: a count per bucket of [`DELAY_BOUNDS`] (the last above
/// them all) and their sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delays {
    pub buckets: [u64; DELAY_BOUNDS.len() + 1],
    pub sum_ns: u64,
}

impl Delays {
    fn observe(&mut self, ns: u64) {
        let seconds = ns as f64 / 1e9;
        let bucket = DELAY_BOUNDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(DELAY_BOUNDS.len());
        self.buckets[bucket] += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The mean, in milliseconds, where there were observations.
    fn mean_ms(&self) -> Option<f64> {
        let count = self.count();
        (count > 0).then(|| self.sum_ns as f64 / 1e6 / count as f64)
    }

    fn add(&mut self, other: &Delays) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }

    fn samples(&self) -> crate::metrics::HistogramSamples<'_> {
        crate::metrics::HistogramSamples {
            bounds: &DELAY_BOUNDS,
            buckets: &self.buckets,
            sum_seconds: self.sum_ns as f64 / 1e9,
        }
    }
}

/// The counters; plain integers summed over workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kpis {
    /// First transmissions of requests, by method.
    pub requests: [u64; LABELS],
    /// Responses (not retransmitted), by CSeq method and class.
    pub responses: [[u64; CLASSES.len()]; LABELS],
    pub invites: InviteOutcomes,
    /// Call records by `sip.call.state` (in [`CallState::ALL`]'s order).
    pub calls: [u64; CallState::ALL.len()],
    /// Calls answered and ended by an answered BYE (SCR's numerator).
    pub completed: u64,
    /// SRD of calls.
    pub request_delays: Delays,
    /// SDD of calls.
    pub disconnect_delays: Delays,
}

impl Default for Kpis {
    fn default() -> Self {
        Kpis {
            requests: [0; LABELS],
            responses: [[0; CLASSES.len()]; LABELS],
            invites: InviteOutcomes::default(),
            calls: [0; CallState::ALL.len()],
            completed: 0,
            request_delays: Delays::default(),
            disconnect_delays: Delays::default(),
        }
    }
}

fn label(method: &[u8]) -> usize {
    METHODS
        .iter()
        .position(|m| m.as_bytes() == method)
        .unwrap_or(OTHER)
}

fn method_name(index: usize) -> &'static str {
    METHODS.get(index).copied().unwrap_or("other")
}

impl Kpis {
    /// Counts `message`, given what transaction tracking said of it.
    pub fn record(&mut self, message: &Message<'_>, seen: &Seen) {
        if seen.retransmission {
            return;
        }
        match message.start {
            StartLine::Request { method, .. } => self.requests[label(method)] += 1,
            StartLine::Response { code, .. } => {
                let method = message.cseq.map_or(OTHER, |c| label(c.method));
                let class = usize::from(code / 100).clamp(1, 6) - 1;
                self.responses[method][class] += 1;
                if method == 0 && seen.first_final {
                    let o = &mut self.invites;
                    o.answered += u64::from((200..300).contains(&code));
                    o.redirected += u64::from((300..400).contains(&code));
                    o.effective += u64::from(matches!(code, 200 | 480 | 486 | 600 | 603));
                    o.ineffective += u64::from(matches!(code, 408 | 500 | 503 | 504));
                }
            }
        }
    }

    /// Counts a call record.
    pub fn record_call(&mut self, call: &CallRecord) {
        self.calls[call.state as usize] += 1;
        if let Some(delay) = call.request_delay {
            self.request_delays.observe(delay);
        }
        if let Some(delay) = call.disconnect_delay {
            self.disconnect_delays.observe(delay);
            self.completed += 1;
        }
    }

    /// SCR in percent, where calls were recorded.
    pub fn completion_ratio(&self) -> Option<f64> {
        let calls: u64 = self.calls.iter().sum();
        (calls > 0).then(|| 100.0 * self.completed as f64 / calls as f64)
    }

    /// SER, SEER and ISA in percent, where INVITEs were seen.
    pub fn ratios(&self) -> Option<(f64, f64, f64)> {
        let invites = self.requests[0];
        let attempts = invites.saturating_sub(self.invites.redirected);
        (invites > 0 && attempts > 0).then(|| {
            let percent = |n: u64, of: u64| 100.0 * n as f64 / of as f64;
            (
                percent(self.invites.answered, attempts),
                percent(self.invites.effective, attempts),
                percent(self.invites.ineffective, invites),
            )
        })
    }

    /// `INVITE=120 BYE=100 ...` and the ratios, for the summary.
    pub fn line(&self) -> String {
        let mut out = String::new();
        for (index, &count) in self.requests.iter().enumerate() {
            if count > 0 {
                let _ = write!(out, "{}={count} ", method_name(index));
            }
        }
        let o = &self.invites;
        let _ = write!(
            out,
            "invite_outcomes: answered={} redirected={} effective={} ineffective={}",
            o.answered, o.redirected, o.effective, o.ineffective
        );
        if let Some((ser, seer, isa)) = self.ratios() {
            let _ = write!(out, " SER={ser:.1}% SEER={seer:.1}% ISA={isa:.1}%");
        }
        if let Some(scr) = self.completion_ratio() {
            let _ = write!(out, " calls:");
            for (state, count) in CallState::ALL.iter().zip(self.calls) {
                let _ = write!(out, " {}={count}", state.as_str());
            }
            let _ = write!(out, " SCR={scr:.1}%");
        }
        for (name, delays) in [
            ("SRD", &self.request_delays),
            ("SDD", &self.disconnect_delays),
        ] {
            if let Some(mean) = delays.mean_ms() {
                let _ = write!(out, " {name}_mean={mean:.1}ms");
            }
        }
        out
    }

    /// Every counter into `out`, each sample with `labels`.
    pub fn expose(&self, out: &mut crate::metrics::Exposition, labels: &[(&str, &str)]) {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all = labels.to_vec();
            all.extend_from_slice(extra);
            all
        };
        for (index, &count) in self.requests.iter().enumerate() {
            out.counter(
                "sip_requests",
                "SIP requests by method, first transmissions.",
                &with(&[("method", method_name(index))]),
                count,
            );
        }
        for (index, classes) in self.responses.iter().enumerate() {
            for (class, &count) in CLASSES.iter().zip(classes) {
                out.counter(
                    "sip_responses",
                    "SIP responses by the method they answer and their class, retransmissions left out.",
                    &with(&[("method", method_name(index)), ("class", class)]),
                    count,
                );
            }
        }
        let o = &self.invites;
        for (outcome, count) in [
            ("answered", o.answered),
            ("redirected", o.redirected),
            ("effective", o.effective),
            ("ineffective", o.ineffective),
        ] {
            out.counter(
                "invite_outcomes",
                "INVITE transactions by their first final response (RFC 6076 SER, SEER, ISA).",
                &with(&[("outcome", outcome)]),
                count,
            );
        }
        for (state, &count) in CallState::ALL.iter().zip(&self.calls) {
            out.counter(
                "calls",
                "Call records by how the call ended (sip.call.state).",
                &with(&[("state", state.as_str())]),
                count,
            );
        }
        out.counter(
            "calls_completed",
            "Calls answered and ended by an answered BYE (RFC 6076 SCR = this / sum of sipbeat_calls_total).",
            labels,
            self.completed,
        );
        out.histogram(
            "session_request_delay",
            "RFC 6076 SRD: INVITE to its first 180/183 or final response, per call.",
            labels,
            &self.request_delays.samples(),
        );
        out.histogram(
            "session_disconnect_delay",
            "RFC 6076 SDD: BYE to its final response, per call.",
            labels,
            &self.disconnect_delays.samples(),
        );
    }

    /// The counters as JSON, for the JSON log format.
    pub fn to_json(&self) -> serde_json::Value {
        let requests = crate::stats::json_object(
            self.requests
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, &n)| (method_name(i), n)),
        );
        let o = &self.invites;
        let calls = crate::stats::json_object(
            CallState::ALL
                .iter()
                .zip(self.calls)
                .map(|(state, n)| (state.as_str(), n)),
        );
        serde_json::json!({
            "requests": requests,
            "invite_outcomes": {
                "answered": o.answered,
                "redirected": o.redirected,
                "effective": o.effective,
                "ineffective": o.ineffective,
            },
            "calls": calls,
            "calls_completed": self.completed,
            "srd_count": self.request_delays.count(),
            "srd_sum_ns": self.request_delays.sum_ns,
            "sdd_count": self.disconnect_delays.count(),
            "sdd_sum_ns": self.disconnect_delays.sum_ns,
        })
    }
}

impl std::ops::AddAssign<&Kpis> for Kpis {
    fn add_assign(&mut self, other: &Kpis) {
        for (mine, theirs) in self.requests.iter_mut().zip(other.requests) {
            *mine += theirs;
        }
        for (mine, theirs) in self.responses.iter_mut().zip(other.responses) {
            for (m, t) in mine.iter_mut().zip(theirs) {
                *m += t;
            }
        }
        self.invites.answered += other.invites.answered;
        self.invites.redirected += other.invites.redirected;
        self.invites.effective += other.invites.effective;
        self.invites.ineffective += other.invites.ineffective;
        for (mine, theirs) in self.calls.iter_mut().zip(other.calls) {
            *mine += theirs;
        }
        self.completed += other.completed;
        self.request_delays.add(&other.request_delays);
        self.disconnect_delays.add(&other.disconnect_delays);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{Framing, HeaderSlots, Status};

    fn record(kpis: &mut Kpis, text: &str, seen: Seen) {
        let mut slots = HeaderSlots::new();
        let Ok(Status::Complete(message)) =
            Message::parse(text.as_bytes(), &mut slots, Framing::Datagram)
        else {
            panic!("{text}");
        };
        kpis.record(&message, &seen);
    }

    #[test]
    fn ratios_follow_rfc_6076() {
        let mut kpis = Kpis::default();
        let invite = "INVITE sip:b@h SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
        let response =
            |code: u16| format!("SIP/2.0 {code} X\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n");
        let first = Seen {
            first_final: true,
            ..Seen::default()
        };
        // 10 INVITEs: 6 answered, 1 busy, 1 redirected, 2 unavailable.
        for _ in 0..10 {
            record(&mut kpis, invite, Seen::default());
        }
        for code in [200, 200, 200, 200, 200, 202, 486, 302, 503, 408] {
            record(&mut kpis, &response(code), first);
        }
        // Retransmissions and later finals do not count again.
        record(
            &mut kpis,
            invite,
            Seen {
                retransmission: true,
                ..Seen::default()
            },
        );
        record(&mut kpis, &response(200), Seen::default());
        assert_eq!(kpis.requests[0], 10);
        assert_eq!(kpis.invites.answered, 6);
        let (ser, seer, isa) = kpis.ratios().unwrap();
        assert!((ser - 100.0 * 6.0 / 9.0).abs() < 1e-9, "{ser}");
        assert!(
            (seer - 100.0 * 6.0 / 9.0).abs() < 1e-9,
            "{seer}: 5 × 200 + 486"
        );
        assert!((isa - 20.0).abs() < 1e-9, "{isa}");
        assert!(kpis.line().contains("SER=66.7%"), "{}", kpis.line());
        assert_eq!(
            kpis.responses[0][1], 7,
            "2xx responses, the late one included"
        );
    }
}
