//! Counters behind the RFC 6076 session KPIs: requests by method, responses
//! by the method they answer and their class, and the outcomes of INVITE
//! transactions (their first final response), from which
//!
//! - SER  = INVITEs answered 2xx / (INVITEs − those answered 3xx),
//! - SEER = INVITEs answered 200, 480, 486, 600 or 603 / (INVITEs − 3xx),
//! - ISA  = INVITEs answered 408, 500, 503 or 504 / INVITEs
//!
//! follow (in the summary, or as PromQL over `/metrics`). Retransmissions
//! are not counted again. SCR, SRD and SDD need call records (to come).

use std::fmt::Write as _;

use crate::sip::{Message, StartLine};
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

/// The counters; plain integers summed over workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kpis {
    /// First transmissions of requests, by method.
    pub requests: [u64; LABELS],
    /// Responses (not retransmitted), by CSeq method and class.
    pub responses: [[u64; CLASSES.len()]; LABELS],
    pub invites: InviteOutcomes,
}

impl Default for Kpis {
    fn default() -> Self {
        Kpis {
            requests: [0; LABELS],
            responses: [[0; CLASSES.len()]; LABELS],
            invites: InviteOutcomes::default(),
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
        serde_json::json!({
            "requests": requests,
            "invite_outcomes": {
                "answered": o.answered,
                "redirected": o.redirected,
                "effective": o.effective,
                "ineffective": o.ineffective,
            }
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
