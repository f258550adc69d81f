//! One owner per Call-ID across per-queue workers.
//!
//! RSS is not symmetric: a request and its response, or a call's two legs,
//! may come in on different RX queues, hence to different workers. So that
//! each worker's transactions and calls see every message of theirs, each
//! Call-ID has one owner among the workers (a keyed hash of it, the same in
//! every worker). A worker that parses a message another one owns hands it
//! over: the message's bytes and where it was seen, over a bounded
//! crossbeam channel, without a lock on the packet path. The owner tracks
//! it, writes its event and, at its end, its call's record.
//!
//! A worker never waits for another: when the owner's inbox is full the
//! message stays where it is (its transaction and call are then tracked
//! apart from the rest of them), and that is counted. At the end of a run
//! every worker stops handing over, then takes in what is still addressed
//! to it until every other worker has stopped too ([`Shard::close`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use foldhash::quality::RandomState;
use std::hash::BuildHasher as _;

use crate::event::Context;
use crate::event::community_id::FlowKey;

/// Messages waiting in one worker's inbox at most.
pub const INBOX: usize = 16_384;

/// A message on its way to the worker that owns its Call-ID.
#[derive(Debug)]
pub struct Handoff {
    /// The message, then the name of the interface it came in on.
    bytes: Vec<u8>,
    message_len: usize,
    pub block: usize,
    pub timestamp_ns: u64,
    pub flow: FlowKey,
    pub vlan: Option<u16>,
}

impl Handoff {
    pub fn new(raw: &[u8], block: usize, context: &Context<'_>) -> Handoff {
        let interface = context.ingress.interface.unwrap_or_default();
        let mut bytes = Vec::with_capacity(raw.len() + interface.len());
        bytes.extend_from_slice(raw);
        bytes.extend_from_slice(interface.as_bytes());
        Handoff {
            bytes,
            message_len: raw.len(),
            block,
            timestamp_ns: context.timestamp_ns,
            flow: context.flow,
            vlan: context.ingress.vlan,
        }
    }

    /// The message's bytes.
    pub fn message(&self) -> &[u8] {
        &self.bytes[..self.message_len]
    }

    /// The interface it came in on, when known.
    pub fn interface(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes[self.message_len..])
            .ok()
            .filter(|name| !name.is_empty())
    }
}

/// One worker's share: which Call-IDs are its own, the other workers'
/// inboxes and its own.
#[derive(Debug)]
pub struct Shard {
    index: usize,
    /// Every worker's inbox, this one's included (never sent to).
    inboxes: Vec<Sender<Handoff>>,
    inbox: Receiver<Handoff>,
    owners: RandomState,
    /// Workers still handing messages over.
    handing: Arc<AtomicUsize>,
    closed: bool,
}

/// Shards for `workers` workers (none for one: it owns everything).
pub fn shards(workers: usize) -> Vec<Shard> {
    if workers < 2 {
        return Vec::new();
    }
    let owners = RandomState::default();
    let handing = Arc::new(AtomicUsize::new(workers));
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..workers).map(|_| bounded(INBOX)).unzip();
    receivers
        .into_iter()
        .enumerate()
        .map(|(index, inbox)| Shard {
            index,
            inboxes: senders.clone(),
            inbox,
            owners: owners.clone(),
            handing: Arc::clone(&handing),
            closed: false,
        })
        .collect()
}

/// Why a message stayed with the worker that parsed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    /// Its Call-ID is this worker's.
    Owned,
    /// The owner's inbox was full, or the owner has stopped.
    InboxFull,
}

impl Shard {
    /// Hands the message with `call_id` to its owner, unless that is this
    /// worker or the owner cannot take it now.
    pub fn hand_over(&self, call_id: &[u8], make: impl FnOnce() -> Handoff) -> Result<(), Kept> {
        let owner = (self.owners.hash_one(call_id) % self.inboxes.len() as u64) as usize;
        if owner == self.index || self.closed {
            return Err(Kept::Owned);
        }
        match self.inboxes[owner].try_send(make()) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Kept::InboxFull),
        }
    }

    /// The next message handed to this worker, if one is waiting.
    pub fn receive(&self) -> Option<Handoff> {
        self.inbox.try_recv().ok()
    }

    /// End of the run: this worker hands nothing over from now on. Returns
    /// whether every worker has got this far (then nothing more can
    /// arrive once the inbox is empty).
    pub fn close(&mut self) -> bool {
        if !self.closed {
            self.closed = true;
            self.handing.fetch_sub(1, Ordering::AcqRel);
        }
        self.handing.load(Ordering::Acquire) == 0
    }

    pub fn is_empty(&self) -> bool {
        self.inbox.is_empty()
    }
}
