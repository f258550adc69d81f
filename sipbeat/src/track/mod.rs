//! What sipbeat remembers between messages: today the transactions in
//! flight ([`transaction`]), so that a response knows its request's time
//! and a repeated message is marked. Everything here is bounded and every
//! entry forgotten early is counted.

pub mod transaction;
