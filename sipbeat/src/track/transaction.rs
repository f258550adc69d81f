//! SIP transactions as a passive observer sees them (RFC 3261 §17): which
//! request a response answers, how long after the request's first
//! transmission it came, and which messages repeat an earlier one.
//!
//! A transaction is known by the top Via's branch with the CSeq method, as
//! a client matches its responses (§17.1.3; ACK belongs to its INVITE).
//! Not by the sent-by as well, as a server matches requests (§17.2.3): a
//! middlebox that rewrites the response's sent-by port (seen in the
//! corpus) would leave the response unmatched. A branch without the
//! `z9hG4bK` cookie (RFC 2543) falls back to Call-ID, CSeq, From tag and
//! the whole top Via. A transaction leg is kept under one keyed 64-bit hash
//! (foldhash's quality hasher, seeded per process) of those parts and the
//! two endpoints: no allocation per message, one hash, and the table
//! indexes by that hash as it is.
//!
//! Each transaction is tracked per leg, between one sender and one
//! receiver: a capture taken at several points of a path (a proxy's two
//! sides) sees the same request, same branch, on each leg, and each leg's
//! response is timed from that leg's request. Retransmissions are marked as
//! Wireshark's `sip.resend` marks them, over UDP only (TCP carries each
//! message once): a request seen again on its leg (never ACK or CANCEL),
//! or a final response seen again with the same code and no other
//! response in between.
//!
//! Bounded: at most `max_transactions` are remembered, each for
//! `timeout_secs` after its last message (64·T1 = 32 s, Timer B/F, by
//! default); the oldest are forgotten first when full. Both are counted.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;

use foldhash::quality::RandomState;

use serde::Deserialize;

use crate::sip::header::{NameAddr, top_via};
use crate::sip::{HeaderName, Message, StartLine};

/// RFC 3261 §8.1.1.7: branches made by RFC 3261 elements start with it.
const MAGIC_COOKIE: &[u8] = b"z9hG4bK";

crate::counters! {
    /// What transaction tracking did.
    pub struct TransactionStats {
        /// Requests seen for the first time: transactions begun.
        started,
        /// Responses matched to a request seen before them.
        answered,
        /// Responses whose request was not seen.
        unmatched,
        /// Requests and final responses seen again (UDP retransmissions).
        retransmissions,
        /// Transactions forgotten `timeout_secs` after their last message.
        timed_out,
        /// Transactions forgotten early to stay within `max_transactions`.
        evicted,
    }
}

/// `transactions:` in the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransactionConfig {
    /// Transactions remembered at most.
    pub max_transactions: usize,
    /// Seconds a transaction is remembered after its last message.
    pub timeout_secs: u64,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            max_transactions: 262_144,
            timeout_secs: 32,
        }
    }
}

impl TransactionConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_transactions == 0 {
            return Err("transactions: max_transactions must be at least 1".into());
        }
        if self.timeout_secs == 0 {
            return Err("transactions: timeout_secs must be at least 1".into());
        }
        Ok(())
    }
}

/// What tracking says of one message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The message repeats an earlier one of its transaction.
    pub retransmission: bool,
    /// A response: when the request it answers was first sent (ns).
    pub request_ns: Option<u64>,
    /// The first final response of its transaction leg (its outcome).
    pub first_final: bool,
}

/// One message's place: who sent it to whom, when, over what.
#[derive(Clone, Copy, Debug)]
pub struct Sighting {
    pub src: (IpAddr, u16),
    pub dst: (IpAddr, u16),
    pub now_ns: u64,
    pub udp: bool,
}

#[derive(Debug)]
struct Entry {
    /// First transmission of the request.
    request_ns: u64,
    /// The latest message of the transaction.
    last_ns: u64,
    /// The final response seen last (0: none, or a provisional since).
    final_code: u16,
    /// Whether any final response was seen.
    answered: bool,
}

/// The transactions in flight.
#[derive(Debug)]
pub struct Transactions {
    config: TransactionConfig,
    hasher: RandomState,
    /// By leg key, already a keyed hash: not hashed again.
    entries: HashMap<u64, Entry, BuildHasherDefault<KeyHasher>>,
    /// Keys with the time of their latest message when queued, oldest
    /// first, for expiry and eviction; an entry touched since it was
    /// queued goes to the back when its turn comes.
    order: VecDeque<(u64, u64)>,
    stats: TransactionStats,
}

impl Transactions {
    pub fn new(config: TransactionConfig) -> Transactions {
        Transactions {
            config,
            hasher: RandomState::default(),
            entries: HashMap::default(),
            order: VecDeque::new(),
            stats: TransactionStats::default(),
        }
    }

    pub fn stats(&self) -> &TransactionStats {
        &self.stats
    }

    /// Transactions remembered now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Tracks `message`; says whether it repeats one and, for a response,
    /// when its request was first sent.
    pub fn track(&mut self, message: &Message<'_>, at: &Sighting) -> Seen {
        self.expire(at.now_ns);
        match message.start {
            StartLine::Request { method, .. } => {
                // ACK: no response; CANCEL: its own, but never a resend
                // (as Wireshark): neither is tracked as a request here.
                if method.eq_ignore_ascii_case(b"ACK") {
                    return Seen::default();
                }
                let cancel = method.eq_ignore_ascii_case(b"CANCEL");
                let Some(key) = self.key(message, at.src, at.dst) else {
                    return Seen::default();
                };
                match self.entries.get_mut(&key) {
                    Some(entry) => {
                        entry.last_ns = at.now_ns;
                        let again = at.udp && !cancel;
                        if again {
                            self.stats.retransmissions += 1;
                        }
                        Seen {
                            retransmission: again,
                            ..Seen::default()
                        }
                    }
                    None => {
                        self.insert(key, at.now_ns);
                        Seen::default()
                    }
                }
            }
            StartLine::Response { code, .. } => {
                // The leg the request went: from this response's receiver.
                let Some(key) = self.key(message, at.dst, at.src) else {
                    return Seen::default();
                };
                let Some(entry) = self.entries.get_mut(&key) else {
                    self.stats.unmatched += 1;
                    return Seen::default();
                };
                entry.last_ns = at.now_ns;
                let again = at.udp && code >= 200 && entry.final_code == code;
                entry.final_code = if code >= 200 { code } else { 0 };
                let first_final = code >= 200 && !entry.answered;
                entry.answered |= code >= 200;
                if again {
                    self.stats.retransmissions += 1;
                } else {
                    self.stats.answered += 1;
                }
                Seen {
                    retransmission: again,
                    request_ns: Some(entry.request_ns),
                    first_final,
                }
            }
        }
    }

    fn insert(&mut self, key: u64, now_ns: u64) {
        while self.entries.len() >= self.config.max_transactions {
            let Some((oldest, _)) = self.order.pop_front() else {
                break;
            };
            if self.entries.remove(&oldest).is_some() {
                self.stats.evicted += 1;
            }
        }
        self.entries.insert(
            key,
            Entry {
                request_ns: now_ns,
                last_ns: now_ns,
                final_code: 0,
                answered: false,
            },
        );
        self.order.push_back((key, now_ns));
        self.stats.started += 1;
    }

    /// Forgets transactions idle for `timeout_secs`, oldest first.
    fn expire(&mut self, now_ns: u64) {
        let timeout = self.config.timeout_secs.saturating_mul(1_000_000_000);
        while let Some(&(key, queued_ns)) = self.order.front() {
            if now_ns.saturating_sub(queued_ns) < timeout {
                break;
            }
            self.order.pop_front();
            match self.entries.get(&key) {
                // Gone already (evicted).
                None => {}
                Some(entry) if now_ns.saturating_sub(entry.last_ns) >= timeout => {
                    self.entries.remove(&key);
                    self.stats.timed_out += 1;
                }
                // Active since it was queued: its turn comes again.
                Some(entry) => self.order.push_back((key, entry.last_ns)),
            }
        }
    }

    /// The key of `message`'s transaction on the leg from `requester` to
    /// `responder`, hashed; `None` without a Via or CSeq to know it by.
    fn key(
        &self,
        message: &Message<'_>,
        requester: (IpAddr, u16),
        responder: (IpAddr, u16),
    ) -> Option<u64> {
        let cseq = message.cseq?;
        let via = top_via(message.first_value(HeaderName::Via)?)?;
        // ACK belongs to the INVITE transaction it acknowledges.
        let method: &[u8] = if cseq.method.eq_ignore_ascii_case(b"ACK") {
            b"INVITE"
        } else {
            cseq.method
        };
        let mut hasher = self.hasher.build_hasher();
        match via.branch.filter(|b| b.starts_with(MAGIC_COOKIE)) {
            Some(branch) => {
                0u8.hash(&mut hasher);
                branch.hash(&mut hasher);
            }
            None => {
                // RFC 2543: the request's identity.
                1u8.hash(&mut hasher);
                message.call_id?.hash(&mut hasher);
                cseq.number.hash(&mut hasher);
                message
                    .first_value(HeaderName::From)
                    .and_then(NameAddr::parse)
                    .and_then(|from| from.param(b"tag"))
                    .hash(&mut hasher);
                via.value.hash(&mut hasher);
            }
        }
        // Methods are case-sensitive (RFC 3261 §7.1).
        method.hash(&mut hasher);
        requester.hash(&mut hasher);
        responder.hash(&mut hasher);
        Some(hasher.finish())
    }
}

/// Passes a `u64` key through: the table's keys are keyed hashes already.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; fold anything else anyway.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{Framing, HeaderSlots, Status};

    fn track(t: &mut Transactions, text: &str, from_uac: bool, ms: u64) -> Seen {
        let mut slots = HeaderSlots::new();
        let Ok(Status::Complete(message)) =
            Message::parse(text.as_bytes(), &mut slots, Framing::Datagram)
        else {
            panic!("{text}");
        };
        let uac = ("192.0.2.1".parse().unwrap(), 5060);
        let uas = ("192.0.2.2".parse().unwrap(), 5060);
        let (src, dst) = if from_uac { (uac, uas) } else { (uas, uac) };
        t.track(
            &message,
            &Sighting {
                src,
                dst,
                now_ns: ms * 1_000_000,
                udp: true,
            },
        )
    }

    fn request(method: &str, branch: &str) -> String {
        format!(
            "{method} sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP a.example:5060;branch={branch}\r\nFrom: <sip:a@h>;tag=1\r\nCall-ID: c@h\r\nCSeq: 1 {method}\r\n\r\n"
        )
    }

    fn response(code: u16, method: &str, branch: &str) -> String {
        format!(
            "SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP a.example:5060;branch={branch}\r\nFrom: <sip:a@h>;tag=1\r\nCall-ID: c@h\r\nCSeq: 1 {method}\r\n\r\n"
        )
    }

    #[test]
    fn responses_time_from_the_first_transmission_and_repeats_are_marked() {
        let mut t = Transactions::new(TransactionConfig::default());
        let invite = request("INVITE", "z9hG4bK1");
        assert_eq!(track(&mut t, &invite, true, 0), Seen::default());
        let resent = track(&mut t, &invite, true, 500);
        assert!(resent.retransmission);
        let trying = track(&mut t, &response(100, "INVITE", "z9hG4bK1"), false, 600);
        assert_eq!(trying.request_ns, Some(0));
        assert!(!trying.retransmission);
        let ok = response(200, "INVITE", "z9hG4bK1");
        assert!(!track(&mut t, &ok, false, 900).retransmission);
        let again = track(&mut t, &ok, false, 1400);
        assert!(again.retransmission);
        assert_eq!(again.request_ns, Some(0));
        // The same request on another leg (a proxy's far side) is its own.
        let mut other = Transactions::new(TransactionConfig::default());
        let mut slots = HeaderSlots::new();
        let Ok(Status::Complete(m)) =
            Message::parse(invite.as_bytes(), &mut slots, Framing::Datagram)
        else {
            panic!("invite");
        };
        let leg = |a: &str, b: &str, ms: u64| Sighting {
            src: (a.parse().unwrap(), 5060),
            dst: (b.parse().unwrap(), 5060),
            now_ns: ms * 1_000_000,
            udp: true,
        };
        assert!(
            !other
                .track(&m, &leg("10.0.0.1", "10.0.0.2", 0))
                .retransmission
        );
        assert!(
            !other
                .track(&m, &leg("10.0.1.1", "10.0.1.2", 1))
                .retransmission
        );
        assert!(
            other
                .track(&m, &leg("10.0.1.1", "10.0.1.2", 2))
                .retransmission
        );
        // ACK is never a resend; a new transaction is its own.
        assert!(!track(&mut t, &request("ACK", "z9hG4bK1"), true, 1500).retransmission);
        assert!(!track(&mut t, &request("ACK", "z9hG4bK1"), true, 1600).retransmission);
        let bye = track(&mut t, &response(200, "BYE", "z9hG4bK2"), false, 2000);
        assert_eq!(bye, Seen::default(), "its request was not seen");
        assert_eq!(t.stats().unmatched, 1);
        assert_eq!(t.stats().retransmissions, 2);
        assert_eq!(t.stats().started, 1);
    }

    #[test]
    fn rfc2543_branches_fall_back_to_the_request_identity() {
        let mut t = Transactions::new(TransactionConfig::default());
        let old = request("OPTIONS", "abc");
        track(&mut t, &old, true, 0);
        assert!(track(&mut t, &old, true, 10).retransmission);
        assert_eq!(
            track(&mut t, &response(200, "OPTIONS", "abc"), false, 30).request_ns,
            Some(0)
        );
    }

    #[test]
    fn bounded_by_count_and_time() {
        let mut t = Transactions::new(TransactionConfig {
            max_transactions: 100,
            timeout_secs: 32,
        });
        for i in 0..1000 {
            track(&mut t, &request("INVITE", &format!("z9hG4bK{i}")), true, i);
            assert!(t.len() <= 100);
        }
        assert_eq!(t.stats().evicted, 900);
        // 33 s later: all forgotten.
        track(&mut t, &request("INVITE", "z9hG4bKlate"), true, 33_000);
        assert_eq!(t.len(), 1);
        assert_eq!(t.stats().timed_out, 100);
        // An active transaction outlives its first message's age.
        let mut t = Transactions::new(TransactionConfig::default());
        track(&mut t, &request("INVITE", "z9hG4bKa"), true, 0);
        track(&mut t, &response(180, "INVITE", "z9hG4bKa"), false, 20_000);
        track(&mut t, &request("OPTIONS", "z9hG4bKb"), true, 40_000);
        assert_eq!(t.len(), 2, "touched 20 s ago: kept");
        assert_eq!(
            track(&mut t, &response(200, "INVITE", "z9hG4bKa"), false, 41_000).request_ns,
            Some(0)
        );
    }
}
