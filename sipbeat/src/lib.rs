//! sipbeat: a passive SIP sensor.
//!
//! Frames come in from a [`capture`] source, are decoded down to their
//! transport payload ([`decode`]), put back together where IP fragmented
//! them or TCP split them ([`reassemble`]), parsed as SIP in place ([`sip`]), matched to
//! their transactions ([`track`]), turned into Packetbeat-compatible ECS
//! events ([`event`]) and handed to an
//! [`output`]. [`pipeline`] strings these together for one thread, and [`shard`] gives
//! each Call-ID one owner among several; [`stats`] counts every frame that
//! does not make it, by reason.

#[cfg(feature = "xdp")]
pub mod caps;
pub mod capture;
pub mod cli;
pub mod config;
pub mod cpu;
pub mod decode;
pub mod event;
pub mod fields;
pub mod log;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod read;
pub mod reason;
pub mod reassemble;
#[cfg(feature = "xdp")]
pub mod run;
pub mod shard;
pub mod simd;
pub mod sip;
pub mod stats;
pub mod track;
