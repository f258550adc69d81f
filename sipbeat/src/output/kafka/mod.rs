//! Events to Kafka, for Elasticsearch ingestion (Logstash, Kafka Connect,
//! Elastic Agent), through librdkafka.
//!
//! - [`config`]: the YAML/URL settings and their librdkafka properties.
//! - [`sink`]: the producer, delivery accounting, the queue-full policy and
//!   recovery from fatal producer errors.
//!
//! The message value is the event exactly as the stdout output writes it
//! (Beats JSON codec shape), so pipelines built for Packetbeat-through-Kafka
//! read it unchanged; the key is the Call-ID by default, so a dialog stays on
//! one partition, in order.

pub mod config;
pub mod sink;

pub use config::KafkaConfig;
pub use sink::{KafkaCounters, KafkaSink};
