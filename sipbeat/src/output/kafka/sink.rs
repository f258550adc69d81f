//! The Kafka producer behind [`KafkaSink`]: enqueue, account for every
//! delivery report, apply the queue-full policy, recover from fatal errors.
//!
//! Queue-full policy: librdkafka's queue (`queue_max_messages`,
//! `queue_max_kbytes`) holds events while a broker is slow or away, and
//! `message.timeout.ms=0` keeps them until it returns. When that queue is
//! full, a worker waits up to `max_block_ms` for room, then drops the event
//! and counts it (`dropped_queue_full`). It never waits longer: a capture
//! worker that stalls lets its ring overflow, and the NIC then drops frames
//! that nobody counts — a counted drop here is the better loss. Reading
//! files, where nothing overflows, waits as long as it takes by default.
//! With a disk queue nothing is dropped: a live worker leaves the event on
//! disk and goes on; a file reader waits for room while the broker keeps
//! delivering (reading every event back from disk would only slow it) and
//! leaves events on disk once the broker has delivered nothing for a second.
//!
//! Fatal producer errors (a fenced or unknown producer id under idempotence)
//! make librdkafka fail everything outstanding; those events are kept from
//! their delivery reports, a new producer is made, and they are sent again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use rdkafka::statistics::Statistics;
use rdkafka::util::Timeout;

use super::KafkaConfig;
use crate::output::queue::{DiskQueue, Refused};
use crate::output::{EventMeta, OutputError, Sink};
use crate::sip::SipType;

/// A topic or key template: literal text and `%{[field]}` references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    CallId,
    Method,
    Kind,
    Dataset,
}

impl Template {
    /// Parses `text`; only fields every event can route by are allowed.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("%{[") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 3..];
            let end = after
                .find("]}")
                .ok_or_else(|| format!("unclosed %{{[ in {text:?}"))?;
            parts.push(match &after[..end] {
                "sip.call_id" => Part::CallId,
                "sip.method" => Part::Method,
                "sip.type" => Part::Kind,
                "event.dataset" => Part::Dataset,
                other => {
                    return Err(format!(
                        "unknown field {other:?} in {text:?} (sip.call_id, sip.method, sip.type or event.dataset)"
                    ));
                }
            });
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Writes the template for `meta` into `out`; a missing field writes nothing.
    pub fn render(&self, meta: &EventMeta<'_>, out: &mut Vec<u8>) {
        out.clear();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.extend_from_slice(text.as_bytes()),
                Part::CallId => out.extend_from_slice(meta.call_id.unwrap_or_default()),
                // Methods are tokens; upper case as in sip.method.
                Part::Method => out.extend(
                    meta.method
                        .unwrap_or_default()
                        .iter()
                        .map(u8::to_ascii_uppercase),
                ),
                Part::Kind => {
                    out.extend_from_slice(meta.sip_type.map_or("", SipType::name).as_bytes());
                }
                Part::Dataset => out.extend_from_slice(meta.dataset.name().as_bytes()),
            }
        }
    }
}

/// Delivery accounting, shared with librdkafka's callback thread.
#[derive(Debug, Default)]
pub struct KafkaCounters {
    /// Events handed to librdkafka.
    pub enqueued: AtomicU64,
    /// Events the broker acknowledged.
    pub delivered: AtomicU64,
    /// Events that failed for good (broker refused them).
    pub failed: AtomicU64,
    /// Send retries librdkafka made (from its statistics).
    pub retries: AtomicU64,
    /// Events dropped because the queue stayed full for `max_block_ms`.
    pub dropped_queue_full: AtomicU64,
    /// Events sent again after a fatal producer error.
    pub requeued: AtomicU64,
    /// Producers replaced after a fatal error.
    pub producer_restarts: AtomicU64,
    /// When the first and the latest delivery report came, in µs since the
    /// sink was made, plus one (0: none yet). The span between them gives
    /// the sustained delivery rate, apart from the start-up: an idempotent
    /// producer sends nothing until it has a producer id, which librdkafka
    /// asks for on a 500 ms timer when no broker connection is up yet.
    pub first_delivery_us: AtomicU64,
    pub last_delivery_us: AtomicU64,
    /// Whether librdkafka's latest statistics show a broker connection up.
    pub broker_up: AtomicBool,
}

impl KafkaCounters {
    /// Every event counter by name, in summary order: the one list the
    /// summary line and the metrics endpoint both read.
    pub fn values(&self) -> [(&'static str, u64); 7] {
        [
            ("enqueued", Self::get(&self.enqueued)),
            ("delivered", Self::get(&self.delivered)),
            ("failed", Self::get(&self.failed)),
            ("retries", Self::get(&self.retries)),
            ("dropped_queue_full", Self::get(&self.dropped_queue_full)),
            ("requeued", Self::get(&self.requeued)),
            ("producer_restarts", Self::get(&self.producer_restarts)),
        ]
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Delivery reports in so far (delivered or failed).
    fn settled(&self) -> u64 {
        Self::get(&self.delivered) + Self::get(&self.failed)
    }

    fn delivered_at(&self, since_start: Duration) {
        let us = since_start.as_micros() as u64 + 1;
        if self.first_delivery_us.load(Ordering::Relaxed) == 0 {
            self.first_delivery_us.store(us, Ordering::Relaxed);
        }
        self.last_delivery_us.store(us, Ordering::Relaxed);
        Self::bump(&self.delivered);
    }

    /// Time to the first delivery, and events/s delivered from then to the
    /// latest delivery (`None` before two deliveries).
    pub fn delivery_rate(&self) -> (Option<Duration>, Option<f64>) {
        let first = Self::get(&self.first_delivery_us);
        let last = Self::get(&self.last_delivery_us);
        let to_first = (first > 0).then(|| Duration::from_micros(first - 1));
        let delivered = Self::get(&self.delivered);
        let rate = (last > first && delivered >= 2)
            .then(|| (delivered - 1) as f64 / ((last - first) as f64 / 1e6));
        (to_first, rate)
    }
}

/// An event kept from a delivery report, to send again.
struct Unsent {
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    timestamp_ms: Option<i64>,
    opaque: usize,
}

/// Events between looks at delivery reports and the removal of delivered
/// segments, besides every flush.
const COMMIT_EVERY: u64 = 4096;

/// How long a file reader waits for a broker that delivers nothing before
/// its events wait on disk instead.
const STALL: Duration = Duration::from_secs(1);

/// What a delivery report carries: the event's disk-queue seq plus one, or
/// 0 for an event not in a disk queue.
type Opaque = usize;

/// librdkafka's callbacks.
struct Callbacks {
    counters: Arc<KafkaCounters>,
    /// Retries counted by earlier producers (statistics restart at zero).
    retries_before: u64,
    /// When the sink was made (delivery times count from here).
    started: Instant,
    fatal: Arc<AtomicBool>,
    unsent: Arc<Mutex<Vec<Unsent>>>,
    /// Disk-queue seqs whose fate is settled (delivered, or failed for good).
    settled: Arc<Mutex<Vec<u64>>>,
    /// Repeated errors said once, then once a period with a count.
    log: crate::log::Limiter,
}

impl Callbacks {
    fn settle(&self, opaque: Opaque) {
        if opaque > 0 {
            self.settled
                .lock()
                .expect("not poisoned")
                .push(opaque as u64 - 1);
        }
    }
}

impl ClientContext for Callbacks {
    fn stats(&self, statistics: Statistics) {
        let retries: u64 = statistics.brokers.values().map(|b| b.txretries).sum();
        self.counters
            .retries
            .store(self.retries_before + retries, Ordering::Relaxed);
        // Bootstrap entries have no node id; a named broker that is UP can
        // take events.
        let up = statistics
            .brokers
            .values()
            .any(|b| b.nodeid >= 0 && b.state == "UP");
        self.counters.broker_up.store(up, Ordering::Relaxed);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            self.fatal.store(true, Ordering::SeqCst);
        }
        // librdkafka's reasons carry counts and timings that change
        // between repeats ("1/1 brokers are down", "after 3ms"): one
        // error code is one message to the limiter.
        let key = format!("{:?}", error.rdkafka_error_code());
        self.log.warn_as(&key, &format!("kafka: {error}: {reason}"));
    }
}

impl ProducerContext for Callbacks {
    type DeliveryOpaque = Opaque;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Opaque) {
        match result {
            Ok(_) => {
                self.counters.delivered_at(self.started.elapsed());
                self.settle(opaque);
            }
            Err((error, message)) => {
                let fatal = self.fatal.load(Ordering::SeqCst)
                    || matches!(
                        error.rdkafka_error_code(),
                        Some(
                            RDKafkaErrorCode::Fatal
                                | RDKafkaErrorCode::PurgeQueue
                                | RDKafkaErrorCode::PurgeInflight
                        )
                    );
                if fatal {
                    // Not the event's fault: keep it for the next producer.
                    let unsent = Unsent {
                        topic: message.topic().to_string(),
                        key: message.key().map(<[u8]>::to_vec),
                        payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                        timestamp_ms: message.timestamp().to_millis(),
                        opaque,
                    };
                    self.unsent.lock().expect("not poisoned").push(unsent);
                } else {
                    KafkaCounters::bump(&self.counters.failed);
                    self.settle(opaque);
                    self.log
                        .warn(&format!("kafka: event not delivered: {error}"));
                }
            }
        }
    }
}

/// Publishes events to Kafka. One per process: librdkafka batches per
/// partition across everything sent through it (see benchmarks/history.md).
pub struct KafkaSink {
    config: KafkaConfig,
    producer: ThreadedProducer<Callbacks>,
    started: Instant,
    counters: Arc<KafkaCounters>,
    fatal: Arc<AtomicBool>,
    unsent: Arc<Mutex<Vec<Unsent>>>,
    settled: Arc<Mutex<Vec<u64>>>,
    /// `queue.disk`: events wait here until delivered.
    queue: Option<DiskQueue>,
    topic: Template,
    key: Template,
    topic_buf: Vec<u8>,
    key_buf: Vec<u8>,
    /// The event being published ([`Sink::buffer`]); librdkafka copies it.
    event_buf: Vec<u8>,
    last_drop_report: Option<Instant>,
    /// Delivery reports counted when the broker was last found stalled
    /// ([`KafkaSink::patient`]).
    stalled_at: Option<u64>,
    /// Events refused by librdkafka, said once a period.
    refusals: crate::log::Limiter,
}

fn producer(
    config: &KafkaConfig,
    started: Instant,
    counters: &Arc<KafkaCounters>,
    fatal: &Arc<AtomicBool>,
    unsent: &Arc<Mutex<Vec<Unsent>>>,
    settled: &Arc<Mutex<Vec<u64>>>,
) -> Result<ThreadedProducer<Callbacks>, OutputError> {
    let callbacks = Callbacks {
        counters: Arc::clone(counters),
        retries_before: KafkaCounters::get(&counters.retries),
        started,
        fatal: Arc::clone(fatal),
        unsent: Arc::clone(unsent),
        settled: Arc::clone(settled),
        log: crate::log::Limiter::default(),
    };
    config
        .client_config()
        .create_with_context(callbacks)
        .map_err(|e| OutputError::Kafka(format!("cannot create producer: {e}")))
}

impl KafkaSink {
    /// Creates the producer; brokers are contacted in the background, so a
    /// broker that is down now only delays delivery.
    pub fn new(config: &KafkaConfig) -> Result<KafkaSink, OutputError> {
        KafkaSink::for_worker(config, crate::output::ONLY_WORKER)
    }

    /// [`KafkaSink::new`] for the worker called `worker`: its disk queue,
    /// when the config has one, is `queue.disk.path/worker`.
    pub fn for_worker(config: &KafkaConfig, worker: &str) -> Result<KafkaSink, OutputError> {
        config.validate().map_err(OutputError::Kafka)?;
        let counters = Arc::new(KafkaCounters::default());
        let fatal = Arc::new(AtomicBool::new(false));
        let unsent = Arc::new(Mutex::new(Vec::new()));
        let settled = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let queue = match &config.disk_queue {
            None => None,
            Some(disk) => {
                let dir = disk.path.join(worker);
                let queue = DiskQueue::open(disk, &dir).map_err(|e| {
                    OutputError::Kafka(format!("disk queue {}: {e}", dir.display()))
                })?;
                if queue.depth() > 0 {
                    crate::log::info(&format!(
                        "disk queue {}: {} events from an earlier run to send first",
                        dir.display(),
                        queue.depth()
                    ));
                }
                Some(queue)
            }
        };
        Ok(KafkaSink {
            producer: producer(config, started, &counters, &fatal, &unsent, &settled)?,
            settled,
            queue,
            started,
            topic: Template::parse(&config.topic).map_err(OutputError::Kafka)?,
            key: Template::parse(&config.key).map_err(OutputError::Kafka)?,
            config: config.clone(),
            counters,
            fatal,
            unsent,
            topic_buf: Vec::new(),
            key_buf: Vec::new(),
            event_buf: Vec::new(),
            last_drop_report: None,
            stalled_at: None,
            refusals: crate::log::Limiter::default(),
        })
    }

    /// The delivery counters (shared; they keep counting after this call).
    pub fn counters(&self) -> Arc<KafkaCounters> {
        Arc::clone(&self.counters)
    }

    /// Triggers a fatal producer error, as a fenced producer would (tests).
    #[doc(hidden)]
    pub fn inject_fatal_error(&self) {
        use rdkafka::bindings::{rd_kafka_resp_err_t, rd_kafka_test_fatal_error};
        // SAFETY: the client pointer is valid while the producer lives, and the
        // reason is a NUL-terminated static string.
        unsafe {
            rd_kafka_test_fatal_error(
                self.producer.client().native_ptr(),
                rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                c"injected by sipbeat tests".as_ptr(),
            );
        }
    }

    /// After a fatal error: collect what librdkafka gave up on, make a new
    /// producer, send it all again.
    fn recover(&mut self) -> Result<(), OutputError> {
        if !self.fatal.load(Ordering::SeqCst) && self.producer.client().fatal_error().is_none() {
            return Ok(());
        }
        // Everything still queued comes back through delivery reports.
        self.producer
            .purge(PurgeConfig::default().queue().inflight());
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.producer.in_flight_count() > 0 && Instant::now() < deadline {
            self.producer.poll(Duration::from_millis(10));
        }
        self.fatal.store(false, Ordering::SeqCst);
        self.producer = producer(
            &self.config,
            self.started,
            &self.counters,
            &self.fatal,
            &self.unsent,
            &self.settled,
        )?;
        KafkaCounters::bump(&self.counters.producer_restarts);
        let unsent = std::mem::take(&mut *self.unsent.lock().expect("not poisoned"));
        crate::log::warn(&format!(
            "kafka: fatal producer error; new producer, {} events sent again",
            unsent.len()
        ));
        for event in unsent {
            KafkaCounters::bump(&self.counters.requeued);
            let record = Record {
                topic: &event.topic,
                key: event.key.as_deref(),
                payload: &event.payload,
                timestamp_ms: event.timestamp_ms,
                opaque: event.opaque,
            };
            // They were counted as enqueued the first time.
            self.send(&record, false);
        }
        Ok(())
    }

    /// Enqueues one event under the queue-full policy.
    fn send(&mut self, record: &Record<'_>, first_time: bool) {
        let deadline = self
            .config
            .max_block_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        loop {
            match try_send(&self.producer, record) {
                Sent::Yes => {
                    if first_time {
                        KafkaCounters::bump(&self.counters.enqueued);
                    }
                    return;
                }
                Sent::Full => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        KafkaCounters::bump(&self.counters.dropped_queue_full);
                        self.report_drop();
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Sent::Refused(error) => {
                    refused(&self.counters, &mut self.refusals, &error);
                    return;
                }
            }
        }
    }

    /// Delivery reports in since the last look: their events leave the
    /// disk queue.
    fn settle(&mut self) {
        let settled = std::mem::take(&mut *self.settled.lock().expect("not poisoned"));
        if let Some(queue) = &mut self.queue {
            for seq in settled {
                queue.acknowledge(seq);
            }
        }
    }

    /// Delivery reports in, then the disk queue's commit (delivered
    /// segments go, what waits is handed to its I/O thread).
    fn commit(&mut self) {
        self.settle();
        if let Some(queue) = &mut self.queue {
            queue.commit();
        }
    }

    /// Produces what the disk queue has written, in order, while
    /// librdkafka takes it.
    fn replay(&mut self) -> Replayed {
        let KafkaSink {
            queue: Some(queue),
            producer,
            topic,
            key,
            topic_buf,
            key_buf,
            counters,
            refusals,
            ..
        } = self
        else {
            return Replayed::AllWritten;
        };
        while let Some((stored, len)) = queue.next_unsent() {
            let seq = stored.seq;
            let (name, key_bytes) = route(topic, key, &stored.meta, topic_buf, key_buf);
            let record = Record::new(&name, key_bytes, stored.payload, &stored.meta, Some(seq));
            let Some(taken) = queued_send(producer, &record, counters, refusals) else {
                return Replayed::Full;
            };
            queue.produced(seq, len);
            if !taken {
                queue.acknowledge(seq);
            }
        }
        Replayed::AllWritten
    }

    /// Whether a worker whose event found librdkafka full should wait for
    /// room: only reading files (no `max_block_ms`), and only while the
    /// broker keeps delivering. `waiting` is when this wait began and the
    /// delivery count then; a broker that delivers nothing for [`STALL`]
    /// makes this and later events wait on disk until it delivers again.
    fn patient(&mut self, waiting: &mut Option<(Instant, u64)>) -> bool {
        if self.config.max_block_ms.is_some() {
            return false;
        }
        let settled = self.counters.settled();
        if self.stalled_at == Some(settled) {
            return false;
        }
        let now = Instant::now();
        match waiting {
            Some((since, seen)) if *seen == settled => {
                if now.duration_since(*since) < STALL {
                    return true;
                }
                self.stalled_at = Some(settled);
                false
            }
            _ => {
                *waiting = Some((now, settled));
                true
            }
        }
    }

    /// One line per second at most while drops go on.
    fn report_drop(&mut self) {
        let now = Instant::now();
        if self
            .last_drop_report
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.last_drop_report = Some(now);
            crate::log::warn(&format!(
                "kafka: queue full, dropping events ({} so far)",
                KafkaCounters::get(&self.counters.dropped_queue_full)
            ));
        }
    }
}

/// Where [`KafkaSink::replay`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Replayed {
    /// Every event written (or read back) so far is produced.
    AllWritten,
    /// librdkafka's queue is full.
    Full,
}

/// One event for librdkafka.
struct Record<'a> {
    topic: &'a str,
    key: Option<&'a [u8]>,
    payload: &'a [u8],
    timestamp_ms: Option<i64>,
    opaque: Opaque,
}

impl<'a> Record<'a> {
    /// An event as published: its capture time is its CreateTime, as
    /// @timestamp says (an old capture's events stay in their time; 0,
    /// unknown, leaves it to librdkafka); `seq` is its disk-queue seq, if
    /// it is in one.
    fn new(
        topic: &'a str,
        key: Option<&'a [u8]>,
        payload: &'a [u8],
        meta: &EventMeta<'_>,
        seq: Option<u64>,
    ) -> Record<'a> {
        Record {
            topic,
            key,
            payload,
            timestamp_ms: (meta.timestamp_ns > 0).then_some((meta.timestamp_ns / 1_000_000) as i64),
            opaque: seq.map_or(0, |seq| seq as usize + 1),
        }
    }
}

/// The topic and key of `meta`'s event, rendered into the buffers; the
/// topic is borrowed unless the rendered name is not UTF-8.
fn route<'b>(
    topic: &Template,
    key: &Template,
    meta: &EventMeta<'_>,
    topic_buf: &'b mut Vec<u8>,
    key_buf: &'b mut Vec<u8>,
) -> (std::borrow::Cow<'b, str>, Option<&'b [u8]>) {
    topic.render(meta, topic_buf);
    key.render(meta, key_buf);
    (
        String::from_utf8_lossy(topic_buf),
        (!key_buf.is_empty()).then_some(key_buf.as_slice()),
    )
}

/// Counts an event the broker will never take (too large, bad topic).
fn refused(counters: &KafkaCounters, refusals: &mut crate::log::Limiter, error: &KafkaError) {
    KafkaCounters::bump(&counters.failed);
    refusals.warn(&format!("kafka: event refused: {error}"));
}

/// Enqueues a disk-queue event once, counted: `None` while librdkafka is
/// full (it waits on disk), else whether librdkafka took it (`false`:
/// refused for good, so settled).
fn queued_send(
    producer: &ThreadedProducer<Callbacks>,
    record: &Record<'_>,
    counters: &KafkaCounters,
    refusals: &mut crate::log::Limiter,
) -> Option<bool> {
    match try_send(producer, record) {
        Sent::Yes => {
            KafkaCounters::bump(&counters.enqueued);
            Some(true)
        }
        Sent::Full => None,
        Sent::Refused(error) => {
            refused(counters, refusals, &error);
            Some(false)
        }
    }
}

/// What became of one attempt to enqueue.
enum Sent {
    Yes,
    /// librdkafka's queue is full.
    Full,
    /// The event itself is unsendable (too large, bad topic).
    Refused(KafkaError),
}

/// Enqueues `record` once, without waiting.
fn try_send(producer: &ThreadedProducer<Callbacks>, record: &Record<'_>) -> Sent {
    let mut base = BaseRecord::with_opaque_to(record.topic, record.opaque).payload(record.payload);
    if let Some(ms) = record.timestamp_ms {
        base = base.timestamp(ms);
    }
    if let Some(key) = record.key {
        base = base.key(key);
    }
    match producer.send(base) {
        Ok(()) => Sent::Yes,
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => Sent::Full,
        Err((error, _)) => Sent::Refused(error),
    }
}

impl Sink for KafkaSink {
    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.event_buf
    }

    fn publish(&mut self, start: usize, meta: &EventMeta<'_>) -> Result<(), OutputError> {
        let mut event = std::mem::take(&mut self.event_buf);
        let mut topic_buf = std::mem::take(&mut self.topic_buf);
        let mut key_buf = std::mem::take(&mut self.key_buf);
        let recovered = self.recover();
        if recovered.is_ok() {
            let payload = &event[start..];
            match self.queue.as_mut().map(|q| q.append(meta, payload)) {
                // No disk queue, or the disk is behind: straight to
                // librdkafka under the queue-full policy.
                None | Some(Err(Refused::SlowDisk)) => {
                    let (topic, key) =
                        route(&self.topic, &self.key, meta, &mut topic_buf, &mut key_buf);
                    self.send(&Record::new(&topic, key, payload, meta, None), true);
                }
                Some(Err(Refused::Full)) => {}
                Some(Ok(seq)) => {
                    if seq % COMMIT_EVERY == 0 {
                        // Delivered segments go before the kernel writes
                        // them back: in steady state the queue costs page
                        // cache, not disk bandwidth.
                        self.commit();
                    }
                    // Produced once written, with those before it.
                    let mut waiting = None;
                    while self.replay() == Replayed::Full && self.patient(&mut waiting) {
                        // Reading files, the broker delivering: wait for
                        // room rather than leave events to be read back.
                        std::thread::sleep(Duration::from_millis(1));
                        self.settle();
                    }
                }
            }
        }
        event.clear();
        self.event_buf = event;
        self.topic_buf = topic_buf;
        self.key_buf = key_buf;
        recovered
    }

    fn idle(&mut self) -> Result<(), OutputError> {
        if let Some(queue) = &mut self.queue {
            // What waits goes to disk, and what is written to librdkafka.
            queue.write_pending();
            self.settle();
            self.replay();
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        // librdkafka's own thread sends batches as they fill (linger_ms).
        self.recover()?;
        self.idle()?;
        if let Some(queue) = &mut self.queue {
            queue.commit();
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<(), OutputError> {
        let timeout = Duration::from_secs(self.config.flush_timeout_secs);
        let deadline = Instant::now() + timeout;
        if self.queue.is_some() {
            // On disk first, whatever happens next, then produced; what is
            // not delivered by the deadline stays there for the next start.
            loop {
                self.recover()?;
                self.idle()?;
                let left = self.queue.as_ref().map_or(0, DiskQueue::depth);
                if left == 0 || Instant::now() >= deadline {
                    if let Some(queue) = &mut self.queue {
                        queue.commit();
                    }
                    if left > 0 {
                        crate::log::warn(&format!(
                            "kafka: {left} events undelivered after {}s stay in the disk queue for the next start",
                            timeout.as_secs()
                        ));
                    }
                    return Ok(());
                }
                let queue = self.queue.as_mut().expect("a queue");
                if queue.caught_up() {
                    let _ = self
                        .producer
                        .flush(Timeout::After(Duration::from_millis(100)));
                } else if !queue.wait_io(Instant::now() + Duration::from_millis(10)) {
                    // librdkafka is full.
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        loop {
            self.recover()?;
            let left = deadline.saturating_duration_since(Instant::now());
            let flushed = self.producer.flush(Timeout::After(left));
            if self.fatal.load(Ordering::SeqCst) && Instant::now() < deadline {
                continue;
            }
            return flushed.map_err(|_| {
                OutputError::Kafka(format!(
                    "{} events still undelivered after {}s",
                    self.producer.in_flight_count(),
                    timeout.as_secs()
                ))
            });
        }
    }

    fn summary(&self) -> Option<String> {
        let c = &self.counters;
        let (to_first, rate) = c.delivery_rate();
        let timing = match (to_first, rate) {
            (Some(to_first), Some(rate)) => format!(
                " first_delivery_after={:.3}s sustained={rate:.0}/s",
                to_first.as_secs_f64()
            ),
            _ => String::new(),
        };
        let counts: Vec<String> = c
            .values()
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        let queue = self.queue.as_ref().map_or(String::new(), |q| {
            format!(
                "\nsipbeat: disk queue: depth={} bytes={} oldest_age_secs={} {}",
                q.depth(),
                q.bytes(),
                q.oldest_age_secs(),
                q.stats().line()
            )
        });
        Some(format!(
            "sipbeat: kafka: {}{timing}{queue}",
            counts.join(" ")
        ))
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut counters = self.counters.values().to_vec();
        if let Some(queue) = &self.queue {
            counters.extend(queue.stats().fields());
        }
        counters
    }

    fn gauges(&self) -> Vec<(&'static str, u64)> {
        self.queue.as_ref().map_or(Vec::new(), |q| {
            vec![
                ("queue_depth_events", q.depth()),
                ("queue_depth_bytes", q.bytes()),
                ("queue_oldest_age_seconds", q.oldest_age_secs()),
            ]
        })
    }

    fn ready(&self) -> bool {
        self.counters.broker_up.load(Ordering::Relaxed)
            && !self.fatal.load(Ordering::SeqCst)
            && self.producer.client().fatal_error().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sustained_rate_counts_from_the_first_delivery() {
        let counters = KafkaCounters::default();
        assert_eq!(counters.delivery_rate(), (None, None));
        counters.delivered_at(Duration::from_millis(500));
        assert_eq!(
            counters.delivery_rate(),
            (Some(Duration::from_millis(500)), None)
        );
        for ms in 501..=1500 {
            counters.delivered_at(Duration::from_millis(ms));
        }
        // 1,000 more events in the second after the first one.
        let (to_first, rate) = counters.delivery_rate();
        assert_eq!(to_first, Some(Duration::from_millis(500)));
        assert!((rate.unwrap() - 1000.0).abs() < 1e-6, "{rate:?}");
        assert_eq!(KafkaCounters::get(&counters.delivered), 1001);
    }

    #[test]
    fn a_file_reader_waits_while_the_broker_delivers_and_no_longer_once_it_stalls() {
        // No broker at 127.0.0.1:9: nothing is delivered unless counted here.
        let config = KafkaConfig::from_url("kafka://127.0.0.1:9/t").unwrap();
        let mut sink = KafkaSink::new(&config).unwrap();
        let mut waiting = None;
        assert!(sink.patient(&mut waiting), "a wait begins");
        assert!(sink.patient(&mut waiting), "and goes on");
        std::thread::sleep(STALL / 2);
        // A delivery: the broker is alive, the wait starts over.
        sink.counters.delivered_at(Duration::ZERO);
        assert!(sink.patient(&mut waiting));
        std::thread::sleep(STALL / 2 + Duration::from_millis(50));
        assert!(sink.patient(&mut waiting), "less than STALL since");
        std::thread::sleep(STALL / 2);
        assert!(
            !sink.patient(&mut waiting),
            "a stall: the event waits on disk"
        );
        // Later events do not wait at all until the broker delivers again.
        assert!(!sink.patient(&mut None));
        sink.counters.delivered_at(Duration::ZERO);
        assert!(sink.patient(&mut None));
        // A live worker never waits with a disk queue.
        let live = KafkaConfig {
            max_block_ms: Some(100),
            ..config
        };
        assert!(!KafkaSink::new(&live).unwrap().patient(&mut None));
    }

    #[test]
    fn templates() {
        let meta = EventMeta {
            call_id: Some(b"abc@host"),
            method: Some(b"invite"),
            sip_type: Some(SipType::Request),
            timestamp_ns: 0,
            dataset: crate::output::Dataset::Sip,
        };
        let mut out = Vec::new();
        Template::parse("sip-%{[sip.method]}-%{[sip.type]}")
            .unwrap()
            .render(&meta, &mut out);
        assert_eq!(out, b"sip-INVITE-request");
        Template::parse("%{[event.dataset]}")
            .unwrap()
            .render(&meta, &mut out);
        assert_eq!(out, b"sip");
        Template::parse("%{[sip.call_id]}")
            .unwrap()
            .render(&meta, &mut out);
        assert_eq!(out, b"abc@host");
        Template::parse("").unwrap().render(&meta, &mut out);
        assert!(out.is_empty());
        assert!(Template::parse("%{[sip.uri]}").is_err());
        assert!(Template::parse("x-%{[sip.method").is_err());
    }
}
