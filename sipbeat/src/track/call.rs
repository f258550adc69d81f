//! Calls: one record per INVITE dialog, known by its Call-ID, written when
//! the call ends (the `sip.call` dataset).
//!
//! A call begins with an INVITE (or, seen mid-way, with an in-dialog
//! INVITE or BYE: then it is `incomplete`). Every leg and every fork of the
//! Call-ID is the same call: a capture at both sides of a proxy sees each
//! message twice and counts both. It ends
//! - with the final response to its BYE (`answered`);
//! - with a final failure once no INVITE of the call is waiting
//!   (`rejected`, or `cancelled` after a CANCEL); a 401/407 challenge
//!   waits for the next INVITE instead, and the call's `code` is then the
//!   last INVITE's;
//! - by a timer after its last message: 32 s (Timer B) without any
//!   response, 180 s (Timer C) after a provisional one, 32 s after a
//!   challenge or a BYE left unanswered, `idle_timeout_secs` once answered
//!   (`timeout`, or `answered` marked `incomplete`);
//! - early, to stay within `max_calls` (counted, marked `incomplete`), or at
//!   the end of the input.
//!
//! A call recorded by its messages is remembered 32 s more, so that late
//! retransmissions and the ACK of a failure do not begin a call of their
//! own. The table is keyed, like the transactions, by a keyed 64-bit hash
//! (of the Call-ID); what the record needs of the first INVITE (Call-ID,
//! From, To, correlation id) is copied once per call, each value at most
//! [`MAX_VALUE`] bytes.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault};
use std::net::IpAddr;

use foldhash::quality::RandomState;
use serde::Deserialize;

use super::transaction::{KeyHasher, Seen, Sighting};
use crate::sip::{HeaderName, Message, StartLine};

/// The longest value copied into a call record (Call-ID, From, To, Reason,
/// correlation id); longer ones are cut.
pub const MAX_VALUE: usize = 512;

/// RFC 3261 Timer B/F (64·T1): a transaction's patience.
const TIMER_B_NS: u64 = 32_000_000_000;
/// RFC 3261 Timer C (> 3 min): an INVITE that had a provisional response.
const TIMER_C_NS: u64 = 180_000_000_000;

crate::counters! {
    /// What call tracking did.
    pub struct CallStats {
        /// Calls begun (an INVITE, or an in-dialog request of a call not seen before).
        started,
        /// Call records written.
        records,
        /// Calls ended by a timer rather than by their messages.
        timed_out,
        /// Calls recorded early (incomplete) to stay within `max_calls`.
        evicted,
    }
}

/// `calls:` in the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallConfig {
    /// Whether call records (`event.dataset: sip.call`) are written.
    pub enabled: bool,
    /// Calls in progress remembered at most.
    pub max_calls: usize,
    /// Seconds an answered call may stay silent before it is recorded as
    /// answered but incomplete (no BYE seen).
    pub idle_timeout_secs: u64,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            enabled: true,
            max_calls: 65_536,
            idle_timeout_secs: 3600,
        }
    }
}

impl CallConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_calls == 0 {
            return Err("calls: max_calls must be at least 1".into());
        }
        if self.idle_timeout_secs == 0 {
            return Err("calls: idle_timeout_secs must be at least 1".into());
        }
        Ok(())
    }
}

/// How a call ended: `sip.call.state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    Answered,
    Rejected,
    Cancelled,
    Timeout,
    Incomplete,
}

impl CallState {
    pub const ALL: [CallState; 5] = [
        CallState::Answered,
        CallState::Rejected,
        CallState::Cancelled,
        CallState::Timeout,
        CallState::Incomplete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Answered => "answered",
            CallState::Rejected => "rejected",
            CallState::Cancelled => "cancelled",
            CallState::Timeout => "timeout",
            CallState::Incomplete => "incomplete",
        }
    }
}

/// Who hung up: `sip.call.ended_by`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Party {
    Caller,
    Callee,
}

impl Party {
    pub fn as_str(self) -> &'static str {
        match self {
            Party::Caller => "caller",
            Party::Callee => "callee",
        }
    }
}

/// What a record copies of the call's messages: one allocation per call
/// for the Call-ID, From, To and From tag, and where the call ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallInfo {
    /// Call-ID, From and To header values (To with the answer's tag once
    /// answered) and the From tag, one after the other.
    text: Box<[u8]>,
    /// Where each of the four ends in `text`.
    ends: [u16; 4],
    /// The Reason header of the BYE, CANCEL or failure that ended it.
    pub reason: Option<Box<[u8]>>,
    pub correlation_id: Option<Box<[u8]>>,
    /// Who sent the first INVITE, and to whom.
    caller: (IpAddr, u16),
    callee: (IpAddr, u16),
}

impl CallInfo {
    fn new(parts: [&[u8]; 4], caller: (IpAddr, u16), callee: (IpAddr, u16)) -> CallInfo {
        let (text, ends) = join(parts);
        CallInfo {
            text,
            ends,
            reason: None,
            correlation_id: None,
            caller,
            callee,
        }
    }

    fn part(&self, index: usize) -> &[u8] {
        let start = if index == 0 {
            0
        } else {
            usize::from(self.ends[index - 1])
        };
        &self.text[start..usize::from(self.ends[index])]
    }

    pub fn call_id(&self) -> &[u8] {
        self.part(0)
    }

    pub fn from(&self) -> &[u8] {
        self.part(1)
    }

    pub fn to(&self) -> &[u8] {
        self.part(2)
    }

    /// Who sent the first INVITE, and to whom.
    pub fn caller(&self) -> (IpAddr, u16) {
        self.caller
    }

    pub fn callee(&self) -> (IpAddr, u16) {
        self.callee
    }

    fn caller_tag(&self) -> &[u8] {
        self.part(3)
    }

    /// The answer's To (with its tag) in place of the INVITE's.
    fn set_to(&mut self, to: &[u8]) {
        let (text, ends) = join([self.call_id(), self.from(), to, self.caller_tag()]);
        (self.text, self.ends) = (text, ends);
    }
}

/// One call, ended: what its `sip.call` event says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    pub info: Box<CallInfo>,
    /// The SIP block whose port the call began on.
    pub block: usize,
    pub udp: bool,
    pub start_ns: u64,
    pub end_ns: u64,
    /// The final response to the (last) initial INVITE.
    pub code: Option<u16>,
    pub state: CallState,
    pub ringing_delay: Option<u64>,
    pub answer_delay: Option<u64>,
    pub talk_duration: Option<u64>,
    pub ended_by: Option<Party>,
    pub messages: u32,
    pub retransmissions: u32,
    pub incomplete: bool,
    /// RFC 6076 SRD: INVITE to its first 180/183 or final response.
    pub request_delay: Option<u64>,
    /// RFC 6076 SDD: BYE to its final response.
    pub disconnect_delay: Option<u64>,
}

/// No time: for the optional instants of [`Call`].
const NEVER: u64 = u64::MAX;

/// One call in progress (or recorded, and waiting out late messages): what
/// every message of the call may change, in 72 bytes; the rest is in its
/// [`CallInfo`].
#[derive(Debug)]
struct Call {
    /// `None` once recorded.
    info: Option<Box<CallInfo>>,
    start_ns: u64,
    last_ns: u64,
    /// The first 180/183, or [`NEVER`].
    ringing_ns: u64,
    /// The first 180/183 or final response to an initial INVITE.
    first_response_ns: u64,
    answer_ns: u64,
    bye_ns: u64,
    code: u16,
    /// Initial INVITE transactions (legs) without a final response.
    pending: u16,
    messages: u32,
    retransmissions: u32,
    block: u8,
    flags: Flags,
    ended_by: Option<Party>,
}

const _: () = assert!(size_of::<Call>() <= 72);

/// A call's yes-or-no facts, as bits.
#[derive(Clone, Copy, Debug, Default)]
struct Flags(u8);

impl Flags {
    const UDP: u8 = 1;
    /// A 2xx answered it (or a BYE showed that one did).
    const ANSWERED: u8 = 2;
    /// Any provisional response: Timer C, not Timer B.
    const PROVISIONAL: u8 = 4;
    const CANCELLED: u8 = 8;
    const INCOMPLETE: u8 = 16;

    fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    fn set(&mut self, flag: u8) {
        self.0 |= flag;
    }
}

fn at(ns: u64) -> Option<u64> {
    (ns != NEVER).then_some(ns)
}

impl Call {
    /// How long the call waits after its last message before a timer
    /// ends it.
    fn patience_ns(&self, idle_ns: u64) -> u64 {
        if self.info.is_none() || self.bye_ns != NEVER {
            TIMER_B_NS
        } else if self.flags.has(Flags::ANSWERED) {
            idle_ns
        } else if self.pending > 0 && self.flags.has(Flags::PROVISIONAL) {
            TIMER_C_NS
        } else {
            TIMER_B_NS
        }
    }

    /// The state of a call ended by a timer or cut short (`cut`: at the end
    /// of the input, or evicted), and whether it is incomplete.
    fn unfinished_state(&self, cut: bool) -> (CallState, bool) {
        let incomplete = self.flags.has(Flags::INCOMPLETE);
        if self.flags.has(Flags::ANSWERED) {
            return (CallState::Answered, true);
        }
        if self.pending == 0 && self.code >= 300 {
            // Challenged, and never tried again.
            return (CallState::Rejected, incomplete);
        }
        if self.flags.has(Flags::CANCELLED) {
            return (CallState::Cancelled, true);
        }
        if cut || incomplete {
            (CallState::Incomplete, true)
        } else {
            (CallState::Timeout, false)
        }
    }
}

/// The calls in progress.
#[derive(Debug)]
pub struct Calls {
    config: CallConfig,
    hasher: RandomState,
    entries: HashMap<u64, Call, BuildHasherDefault<KeyHasher>>,
    /// Keys with the time they were queued, oldest first; each key once.
    order: VecDeque<(u64, u64)>,
    /// Records written since [`Calls::take_ended`] was last called.
    ended: Vec<CallRecord>,
    stats: CallStats,
}

/// `parts`, each cut to [`MAX_VALUE`], one after the other, and where each
/// ends.
fn join(parts: [&[u8]; 4]) -> (Box<[u8]>, [u16; 4]) {
    let mut text = Vec::with_capacity(parts.iter().map(|p| cut(p).len()).sum());
    let mut ends = [0u16; 4];
    for (end, part) in ends.iter_mut().zip(parts) {
        text.extend_from_slice(cut(part));
        *end = text.len() as u16;
    }
    (text.into_boxed_slice(), ends)
}

/// `value`, at most [`MAX_VALUE`] bytes of it (cut on a character
/// boundary).
fn cut(value: &[u8]) -> &[u8] {
    let mut end = value.len().min(MAX_VALUE);
    while end < value.len() && end > 0 && (value[end] & 0xc0) == 0x80 {
        end -= 1;
    }
    &value[..end]
}

fn copy(value: &[u8]) -> Box<[u8]> {
    cut(value).into()
}

impl Calls {
    pub fn new(config: CallConfig) -> Calls {
        Calls {
            config,
            hasher: RandomState::default(),
            entries: HashMap::default(),
            order: VecDeque::new(),
            ended: Vec::new(),
            stats: CallStats::default(),
        }
    }

    pub fn stats(&self) -> &CallStats {
        &self.stats
    }

    /// Calls remembered now (in progress, or recorded and waiting out late
    /// messages).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The records of calls that ended, oldest first; the pipeline writes
    /// them after each message.
    pub fn take_ended(&mut self) -> std::vec::Drain<'_, CallRecord> {
        self.ended.drain(..)
    }

    /// Whether a record is waiting.
    pub fn has_ended(&self) -> bool {
        !self.ended.is_empty()
    }

    /// Follows `message` (whose transaction tracking said `seen`) in its
    /// call. `block`: the SIP block it came in on; `correlation`: its
    /// correlation id, asked for only when a call begins or has none.
    pub fn track<'m>(
        &mut self,
        message: &Message<'m>,
        at: &Sighting,
        seen: &Seen,
        block: usize,
        correlation: impl FnOnce() -> Option<&'m [u8]>,
    ) {
        if !self.config.enabled {
            return;
        }
        self.expire(at.now_ns);
        let (Some(call_id), Some(cseq)) = (message.call_id, message.cseq) else {
            return;
        };
        let key = self.hasher.hash_one(call_id);
        let now = at.now_ns;
        let Some(call) = self.entries.get_mut(&key) else {
            if let StartLine::Request { method, .. } = message.start
                && (method == b"INVITE" || method == b"BYE")
                && !seen.retransmission
            {
                self.begin(key, message, at, block, correlation());
            }
            return;
        };
        call.last_ns = now;
        let Some(info) = call.info.as_mut() else {
            // Recorded: a late message.
            return;
        };
        call.messages += 1;
        call.retransmissions += u32::from(seen.retransmission);
        if info.correlation_id.is_none() {
            info.correlation_id = correlation().map(copy);
        }
        let to_tag = message.to.as_ref().and_then(|to| to.tag).is_some();
        match message.start {
            StartLine::Request { method, .. } => {
                if seen.retransmission {
                    return;
                }
                match method {
                    b"INVITE" if !to_tag && !call.flags.has(Flags::ANSWERED) => {
                        call.pending = call.pending.saturating_add(1);
                    }
                    b"CANCEL" if !call.flags.has(Flags::ANSWERED) => {
                        call.flags.set(Flags::CANCELLED);
                        info.reason = reason(message).map(copy);
                    }
                    b"BYE" if call.bye_ns == NEVER => {
                        call.bye_ns = now;
                        let from_tag = message.from.as_ref().and_then(|f| f.tag);
                        call.ended_by = Some(if from_tag == Some(info.caller_tag()) {
                            Party::Caller
                        } else {
                            Party::Callee
                        });
                        if let Some(reason) = reason(message) {
                            info.reason = Some(copy(reason));
                        }
                        if !call.flags.has(Flags::ANSWERED) && !call.flags.has(Flags::CANCELLED) {
                            // A dialog without its 2xx seen: it was answered.
                            call.flags.set(Flags::ANSWERED | Flags::INCOMPLETE);
                        }
                    }
                    _ => {}
                }
            }
            StartLine::Response { code, .. } => {
                // A final seen first on its leg, or with its request missed.
                let first_final = code >= 200
                    && (seen.first_final || (seen.request_ns.is_none() && !seen.retransmission));
                match cseq.method {
                    b"INVITE" if !call.flags.has(Flags::ANSWERED) => {
                        if code < 200 {
                            call.flags.set(Flags::PROVISIONAL);
                            if (code == 180 || code == 183) && call.ringing_ns == NEVER {
                                call.ringing_ns = now;
                                call.first_response_ns = call.first_response_ns.min(now);
                            }
                            return;
                        }
                        if !first_final {
                            return;
                        }
                        call.first_response_ns = call.first_response_ns.min(now);
                        call.pending = call.pending.saturating_sub(1);
                        call.code = code;
                        if code < 300 {
                            call.flags.set(Flags::ANSWERED);
                            call.answer_ns = now;
                            if let Some(to) = message.first_value(HeaderName::To) {
                                info.set_to(to);
                            }
                        } else if call.pending == 0 && code != 401 && code != 407 {
                            if let Some(reason) = reason(message) {
                                info.reason = Some(copy(reason));
                            }
                            let state = if call.flags.has(Flags::CANCELLED) {
                                CallState::Cancelled
                            } else {
                                CallState::Rejected
                            };
                            let incomplete = call.flags.has(Flags::INCOMPLETE);
                            self.end(key, state, incomplete, now);
                        }
                    }
                    b"BYE" if first_final && call.bye_ns != NEVER => {
                        let answered = call.flags.has(Flags::ANSWERED);
                        let state = if answered {
                            CallState::Answered
                        } else {
                            CallState::Incomplete
                        };
                        let incomplete = call.flags.has(Flags::INCOMPLETE) || !answered;
                        self.end(key, state, incomplete, now);
                    }
                    _ => {}
                }
            }
        }
    }

    fn begin(
        &mut self,
        key: u64,
        message: &Message<'_>,
        at: &Sighting,
        block: usize,
        correlation: Option<&[u8]>,
    ) {
        while self.entries.len() >= self.config.max_calls {
            let Some((oldest, _)) = self.order.pop_front() else {
                break;
            };
            if let Some(call) = self.entries.get(&oldest) {
                if call.info.is_some() {
                    self.stats.evicted += 1;
                    let (state, _) = call.unfinished_state(true);
                    let end_ns = call.last_ns;
                    self.end(oldest, state, true, end_ns);
                }
                self.entries.remove(&oldest);
            }
        }
        let from = message.first_value(HeaderName::From).unwrap_or_default();
        let to = message.first_value(HeaderName::To).unwrap_or_default();
        let from_tag = message
            .from
            .as_ref()
            .and_then(|f| f.tag)
            .unwrap_or_default();
        let in_dialog = message.to.as_ref().and_then(|to| to.tag).is_some();
        let invite = matches!(
            message.start,
            StartLine::Request {
                method: b"INVITE",
                ..
            }
        );
        let call_id = message.call_id.unwrap_or_default();
        let mut info = Box::new(CallInfo::new([call_id, from, to, from_tag], at.src, at.dst));
        info.correlation_id = correlation.map(copy);
        let mut flags = Flags::default();
        if at.udp {
            flags.set(Flags::UDP);
        }
        if in_dialog {
            flags.set(Flags::ANSWERED | Flags::INCOMPLETE);
        }
        let mut call = Call {
            info: Some(info),
            start_ns: at.now_ns,
            last_ns: at.now_ns,
            ringing_ns: NEVER,
            first_response_ns: NEVER,
            answer_ns: NEVER,
            bye_ns: NEVER,
            code: 0,
            pending: u16::from(invite && !in_dialog),
            messages: 1,
            retransmissions: 0,
            block: block.min(usize::from(u8::MAX)) as u8,
            flags,
            ended_by: None,
        };
        if !invite {
            // A BYE of a call not seen: who hangs up is all it tells.
            call.bye_ns = at.now_ns;
            if let Some(info) = call.info.as_mut() {
                info.reason = reason(message).map(copy);
            }
        }
        self.entries.insert(key, call);
        self.order.push_back((key, at.now_ns));
        self.stats.started += 1;
    }

    /// Writes the record of the call under `key` and keeps it (recorded) to
    /// absorb late messages.
    fn end(&mut self, key: u64, state: CallState, incomplete: bool, end_ns: u64) {
        let Some(call) = self.entries.get_mut(&key) else {
            return;
        };
        let Some(info) = call.info.take() else {
            return;
        };
        let since_start = |t: u64| at(t).map(|t| t.saturating_sub(call.start_ns));
        let answered = state == CallState::Answered;
        let in_dialog_bye = at(call.bye_ns).filter(|_| answered);
        self.ended.push(CallRecord {
            info,
            block: usize::from(call.block),
            udp: call.flags.has(Flags::UDP),
            start_ns: call.start_ns,
            end_ns,
            code: (call.code >= 200).then_some(call.code),
            state,
            ringing_delay: since_start(call.ringing_ns),
            answer_delay: since_start(call.answer_ns),
            talk_duration: at(call.answer_ns)
                .zip(in_dialog_bye)
                .map(|(answer, bye)| bye.saturating_sub(answer)),
            ended_by: call.ended_by,
            messages: call.messages,
            retransmissions: call.retransmissions,
            incomplete,
            request_delay: since_start(call.first_response_ns),
            disconnect_delay: in_dialog_bye
                .filter(|_| !incomplete)
                .map(|bye| end_ns.saturating_sub(bye)),
        });
        self.stats.records += 1;
    }

    /// Ends calls whose timer ran out by `now_ns`, and forgets recorded
    /// ones whose late messages are over.
    pub fn expire(&mut self, now_ns: u64) {
        let idle_ns = self.config.idle_timeout_secs.saturating_mul(1_000_000_000);
        while let Some(&(key, queued_ns)) = self.order.front() {
            if now_ns.saturating_sub(queued_ns) < TIMER_B_NS {
                break;
            }
            self.order.pop_front();
            let Some(call) = self.entries.get(&key) else {
                continue;
            };
            let deadline = call.last_ns.saturating_add(call.patience_ns(idle_ns));
            if now_ns < deadline {
                // Its turn comes again.
                self.order.push_back((key, now_ns));
                continue;
            }
            if call.info.is_some() {
                let (state, incomplete) = call.unfinished_state(false);
                let end_ns = call.last_ns;
                self.stats.timed_out += 1;
                self.end(key, state, incomplete, end_ns);
            }
            self.entries.remove(&key);
        }
    }

    /// End of input: every call in progress is recorded as far as it got,
    /// in the order they were last queued.
    pub fn finish(&mut self) {
        while let Some((key, _)) = self.order.pop_front() {
            if let Some(call) = self.entries.get(&key)
                && call.info.is_some()
            {
                let (state, _) = call.unfinished_state(true);
                let end_ns = call.last_ns;
                self.end(key, state, true, end_ns);
            }
            self.entries.remove(&key);
        }
    }
}

/// The Reason header's value (RFC 3326), if the message has one.
fn reason<'m>(message: &Message<'m>) -> Option<&'m [u8]> {
    message.other_header(b"reason")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{Framing, HeaderSlots, Status};
    use crate::track::transaction::{TransactionConfig, Transactions};

    /// A call's messages through the transactions and the calls, as the
    /// pipeline feeds them.
    struct Run {
        transactions: Transactions,
        calls: Calls,
    }

    const CALLER: &str = "192.0.2.1";
    const CALLEE: &str = "192.0.2.2";

    impl Run {
        fn new(config: CallConfig) -> Run {
            Run {
                transactions: Transactions::new(TransactionConfig::default()),
                calls: Calls::new(config),
            }
        }

        /// `text` sent by the caller (`from_caller`) or the callee at `ms`.
        fn feed(&mut self, text: &str, from_caller: bool, ms: u64) {
            let mut slots = HeaderSlots::new();
            let Ok(Status::Complete(message)) =
                Message::parse(text.as_bytes(), &mut slots, Framing::Datagram)
            else {
                panic!("{text}");
            };
            let a = (CALLER.parse().unwrap(), 5060);
            let b = (CALLEE.parse().unwrap(), 5060);
            let (src, dst) = if from_caller { (a, b) } else { (b, a) };
            let at = Sighting {
                src,
                dst,
                now_ns: ms * 1_000_000,
                udp: true,
            };
            let seen = self.transactions.track(&message, &at);
            self.calls.track(&message, &at, &seen, 0, || None);
        }

        /// Another Call-ID's message at `ms`: time passes.
        fn tick(&mut self, ms: u64) {
            let options =
                request("OPTIONS", 1, &format!("o{ms}"), false, "").replace("call-1@h", "other@h");
            self.feed(&options, true, ms);
        }

        fn records(&mut self) -> Vec<CallRecord> {
            self.calls.take_ended().collect()
        }
    }

    fn request(method: &str, cseq: u32, branch: &str, to_tag: bool, extra: &str) -> String {
        let tag = if to_tag { ";tag=b" } else { "" };
        format!(
            "{method} sip:bob@h SIP/2.0\r\nVia: SIP/2.0/UDP a:5060;branch=z9hG4bK{branch}\r\nFrom: \"Al\" <sip:al@h>;tag=a\r\nTo: <sip:bob@h>{tag}\r\nCall-ID: call-1@h\r\nCSeq: {cseq} {method}\r\n{extra}\r\n"
        )
    }

    fn response(code: u16, method: &str, cseq: u32, branch: &str, extra: &str) -> String {
        format!(
            "SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP a:5060;branch=z9hG4bK{branch}\r\nFrom: \"Al\" <sip:al@h>;tag=a\r\nTo: <sip:bob@h>;tag=b\r\nCall-ID: call-1@h\r\nCSeq: {cseq} {method}\r\n{extra}\r\n"
        )
    }

    /// The callee's BYE: From and To swapped.
    fn callee_bye(cseq: u32, branch: &str) -> String {
        format!(
            "BYE sip:al@h SIP/2.0\r\nVia: SIP/2.0/UDP b:5060;branch=z9hG4bK{branch}\r\nFrom: <sip:bob@h>;tag=b\r\nTo: \"Al\" <sip:al@h>;tag=a\r\nCall-ID: call-1@h\r\nCSeq: {cseq} BYE\r\nReason: Q.850;cause=16;text=\"Normal call clearing\"\r\n\r\n"
        )
    }

    fn callee_bye_ok(cseq: u32, branch: &str) -> String {
        format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP b:5060;branch=z9hG4bK{branch}\r\nFrom: <sip:bob@h>;tag=b\r\nTo: \"Al\" <sip:al@h>;tag=a\r\nCall-ID: call-1@h\r\nCSeq: {cseq} BYE\r\n\r\n"
        )
    }

    #[test]
    fn an_answered_call_hung_up_by_the_callee() {
        let mut run = Run::new(CallConfig::default());
        run.feed(&request("INVITE", 1, "1", false, ""), true, 0);
        run.feed(&request("INVITE", 1, "1", false, ""), true, 500);
        run.feed(&response(100, "INVITE", 1, "1", ""), false, 510);
        run.feed(&response(180, "INVITE", 1, "1", ""), false, 700);
        run.feed(&response(200, "INVITE", 1, "1", ""), false, 3000);
        run.feed(&request("ACK", 1, "2", true, ""), true, 3010);
        assert!(run.records().is_empty());
        run.feed(&callee_bye(7, "3"), false, 63_000);
        run.feed(&callee_bye_ok(7, "3"), true, 63_020);
        let records = run.records();
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.state, CallState::Answered);
        assert_eq!(r.code, Some(200));
        assert_eq!(r.ringing_delay, Some(700_000_000));
        assert_eq!(r.answer_delay, Some(3_000_000_000));
        assert_eq!(r.talk_duration, Some(60_000_000_000));
        assert_eq!(r.ended_by, Some(Party::Callee));
        assert_eq!(r.messages, 8);
        assert_eq!(r.retransmissions, 1);
        assert!(!r.incomplete);
        assert_eq!(r.end_ns - r.start_ns, 63_020_000_000);
        assert_eq!(r.disconnect_delay, Some(20_000_000));
        assert_eq!(r.request_delay, Some(700_000_000));
        assert_eq!(r.info.to(), b"<sip:bob@h>;tag=b", "the answer's To");
        assert_eq!(
            r.info.reason.as_deref(),
            Some(&b"Q.850;cause=16;text=\"Normal call clearing\""[..])
        );
        // A late retransmission of the BYE's answer begins nothing.
        run.feed(&callee_bye_ok(7, "3"), true, 63_500);
        run.feed(&callee_bye(7, "3"), false, 63_600);
        assert!(run.records().is_empty());
        assert_eq!(run.calls.stats().started, 1);
        // Forgotten after 32 s.
        run.tick(200_000);
        assert!(run.calls.is_empty());
    }

    #[test]
    fn a_challenge_then_busy_then_a_cancelled_call() {
        let mut run = Run::new(CallConfig::default());
        run.feed(&request("INVITE", 1, "1", false, ""), true, 0);
        run.feed(&response(407, "INVITE", 1, "1", ""), false, 10);
        run.feed(&request("ACK", 1, "1", true, ""), true, 11);
        assert!(run.records().is_empty(), "a challenge waits");
        run.feed(&request("INVITE", 2, "2", false, ""), true, 20);
        run.feed(
            &response(486, "INVITE", 2, "2", "Reason: SIP;cause=486\r\n"),
            false,
            90,
        );
        let records = run.records();
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!((r.state, r.code), (CallState::Rejected, Some(486)));
        assert_eq!(r.answer_delay, None);
        assert_eq!(r.talk_duration, None);
        assert_eq!(r.messages, 5);
        assert_eq!(r.end_ns, 90_000_000);
        assert_eq!(r.info.reason.as_deref(), Some(&b"SIP;cause=486"[..]));

        let mut run = Run::new(CallConfig::default());
        run.feed(&request("INVITE", 1, "1", false, ""), true, 0);
        run.feed(&response(180, "INVITE", 1, "1", ""), false, 100);
        run.feed(&request("CANCEL", 1, "1", false, ""), true, 2000);
        run.feed(&response(200, "CANCEL", 1, "1", ""), false, 2010);
        run.feed(&response(487, "INVITE", 1, "1", ""), false, 2011);
        let r = &run.records()[0];
        assert_eq!((r.state, r.code), (CallState::Cancelled, Some(487)));
        assert_eq!(r.ringing_delay, Some(100_000_000));
        assert!(!r.incomplete);
    }

    #[test]
    fn timers_and_limits_end_calls() {
        let mut run = Run::new(CallConfig::default());
        // Never answered at all: Timer B.
        run.feed(&request("INVITE", 1, "1", false, ""), true, 0);
        run.tick(31_000);
        assert!(run.records().is_empty());
        run.tick(33_000);
        let r = &run.records()[0];
        assert_eq!(
            (r.state, r.code, r.incomplete),
            (CallState::Timeout, None, false)
        );
        assert_eq!(run.calls.stats().timed_out, 1);

        // Answered, never hung up: answered but incomplete after the idle
        // timeout; the end of input cuts another short.
        let mut run = Run::new(CallConfig {
            idle_timeout_secs: 100,
            ..CallConfig::default()
        });
        run.feed(&request("INVITE", 1, "1", false, ""), true, 0);
        run.feed(&response(200, "INVITE", 1, "1", ""), false, 10);
        run.tick(50_000);
        assert!(run.records().is_empty());
        run.tick(120_000);
        let r = &run.records()[0];
        assert_eq!((r.state, r.incomplete), (CallState::Answered, true));
        assert_eq!(r.talk_duration, None);

        // Bounded: the oldest call is recorded, incomplete, and counted.
        let mut calls = Calls::new(CallConfig {
            max_calls: 10,
            ..CallConfig::default()
        });
        let mut transactions = Transactions::new(TransactionConfig::default());
        for i in 0..100u64 {
            let text = request("INVITE", 1, &i.to_string(), false, "")
                .replace("call-1@h", &format!("call-{i}@h"));
            let mut slots = HeaderSlots::new();
            let Ok(Status::Complete(message)) =
                Message::parse(text.as_bytes(), &mut slots, Framing::Datagram)
            else {
                panic!();
            };
            let at = Sighting {
                src: (CALLER.parse().unwrap(), 5060),
                dst: (CALLEE.parse().unwrap(), 5060),
                now_ns: i,
                udp: true,
            };
            let seen = transactions.track(&message, &at);
            calls.track(&message, &at, &seen, 0, || None);
            assert!(calls.len() <= 10);
        }
        assert_eq!(calls.stats().evicted, 90);
        let evicted: Vec<_> = calls.take_ended().collect();
        assert_eq!(evicted.len(), 90);
        assert!(
            evicted
                .iter()
                .all(|r| r.incomplete && r.state == CallState::Incomplete)
        );
        assert_eq!(evicted[0].info.call_id(), b"call-0@h");
        calls.finish();
        assert_eq!(calls.take_ended().count(), 10);
        assert!(calls.is_empty());
    }
}
