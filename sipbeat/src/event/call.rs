//! A call record ([`CallRecord`]) → one ECS event of the `sip.call`
//! dataset: the call's identity as its first INVITE gave it (`sip.call_id`,
//! `sip.from.*`, `sip.to.*`; the caller as `client.*`/`source.*`, the
//! callee as `server.*`/`destination.*`), how it went under `sip.call.*`,
//! and `event.start`/`end`/`duration` spanning it. `@timestamp` is its end,
//! as Packetbeat's flow records have it.

use super::ecs::{self, Env, Memo, Related};
use super::flow::FlowFields;
use super::json::JsonWriter;
use super::{Ingress, community_id::FlowKey};
use crate::decode::protocol;
use crate::sip::header::NameAddr;
use crate::track::call::{CallRecord, CallState};

/// The flow from the caller to the callee, for the record's network fields.
pub fn flow(record: &CallRecord) -> FlowKey {
    let (caller, callee) = (record.info.caller(), record.info.callee());
    FlowKey {
        src: caller.0,
        dst: callee.0,
        src_port: caller.1,
        dst_port: callee.1,
        protocol: if record.udp {
            protocol::UDP
        } else {
            protocol::TCP
        },
    }
}

/// Appends the event for `record` to `out`, as one JSON object.
pub fn write_call(
    out: &mut Vec<u8>,
    env: &Env<'_>,
    memo: &mut Memo,
    flow_fields: &FlowFields,
    record: &CallRecord,
) {
    let info = &record.info;
    let from = NameAddr::parse(info.from());
    let to = NameAddr::parse(info.to());
    let mut related = Related::default();
    related.ip(info.caller().0, flow_fields.src);
    related.ip(info.callee().0, flow_fields.dst);

    let mut writer = JsonWriter::new(out);
    let w = &mut writer;
    let end = memo.timestamps.millis(record.end_ns);
    w.ascii_array("@timestamp", &end);
    w.members(env.metadata);

    w.open("sip");
    w.str("call_id", info.call_id());
    if let Some(from) = &from {
        ecs::write_party(w, "from", from, &mut related);
    }
    if let Some(to) = &to {
        ecs::write_party(w, "to", to, &mut related);
    }
    if let Some(id) = &info.correlation_id {
        w.str("correlation_id", id);
    }
    w.open("call");
    if let Some(code) = record.code {
        w.u64("code", u64::from(code));
    }
    w.ascii("state", record.state.as_str());
    for (key, value) in [
        ("ringing_delay", record.ringing_delay),
        ("answer_delay", record.answer_delay),
        ("talk_duration", record.talk_duration),
    ] {
        if let Some(ns) = value {
            w.u64(key, ns);
        }
    }
    if let Some(party) = record.ended_by {
        w.ascii("ended_by", party.as_str());
    }
    if let Some(reason) = &info.reason {
        w.str("reason", reason);
    }
    w.u64("messages", u64::from(record.messages));
    w.u64("retransmissions", u64::from(record.retransmissions));
    w.raw(
        "incomplete",
        if record.incomplete { b"true" } else { b"false" },
    );
    w.close();
    w.close();

    w.open("event");
    w.members(
        br#""kind":"event","category":["network","session"],"type":["end"],"dataset":"sip.call""#,
    );
    w.ascii(
        "outcome",
        match record.state {
            CallState::Answered => "success",
            CallState::Incomplete => "unknown",
            _ => "failure",
        },
    );
    let start = memo.starts.millis(record.start_ns);
    w.ascii_array("start", &start);
    w.ascii_array("end", &end);
    w.u64("duration", record.end_ns.saturating_sub(record.start_ns));
    w.close();

    w.members(&flow_fields.members);
    related.write(w);
    ecs::write_observer(w, env, &Ingress::default());
    w.members(env.agent);
    writer.finish();
}
