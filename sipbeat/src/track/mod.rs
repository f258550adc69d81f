//! What sipbeat remembers between messages: today the transactions in
//! flight ([`transaction`]), so that a response knows its request's time
//! and a repeated message is marked, and the counters behind the RFC 6076
//! KPIs that follow from them ([`kpi`]). Everything here is bounded and every
//! entry forgotten early is counted.

pub mod call;
pub mod kpi;
pub mod transaction;
