//! Which fields a SIP event has and what they mean.
//!
//! Field for field this is Packetbeat's SIP module (`protos/sip`): the same
//! names, types, omissions and `event.*`/`related.*` semantics, so dashboards
//! and pipelines built for Packetbeat work unchanged. Where Packetbeat is
//! wrong sipbeat is right on purpose, and says so here and in
//! `testdata/deviations.json`:
//! - `sip.contact.*` comes from the Contact header (Packetbeat reads To).
//! - `network.iana_number` is 6 for TCP (Packetbeat always writes 17).
//! - `sip.private.uri.*` is the URI inside P-Associated-URI's `<>`.
//!
//! Additions, documented in `fields.yml`: `sip.timestamp` (capture time in
//! nanoseconds), `sip.sdp.media`, `ecs.version`, `agent.*`, `host.name`.

use std::net::IpAddr;
use std::ops::Range;

use super::community_id;
use super::flow::FlowFields;
use super::json::{Case, JsonWriter, QuotedIp};
use super::lists::{self, ListCache};
use super::timestamp::TimestampFormatter;
use super::{Agent, Context, EcsConfig, Ingress};
use crate::decode::protocol;
use crate::simd::bytes_eq;
use crate::sip::auth::Credentials;
use crate::sip::header::NameAddr;
use crate::sip::sdp::Sdp;
use crate::sip::uri::Uri;
use crate::sip::{HeaderName, Message, SipType, StartLine};
use crate::track::transaction::Seen;

/// The ECS version the field set follows.
pub const ECS_VERSION: &str = "8.17.0";

/// What an event needs besides the message.
pub struct Env<'a> {
    pub config: &'a EcsConfig,
    /// [`metadata_members`] of the agent, written once.
    pub metadata: &'a [u8],
    /// [`agent_members`] of the agent, written once.
    pub agent: &'a [u8],
    /// [`observer_members`] of the agent, written once.
    pub observer: &'a [u8],
    /// Correlation header names, lower case, in order of preference.
    pub correlation: &'a [Vec<u8>],
}

/// What events keep between messages: caches whose contents depend only on
/// their keys.
#[derive(Debug, Default)]
pub struct Memo {
    pub timestamps: TimestampFormatter,
    /// Requests' first transmissions (`event.start`), apart so the two
    /// caches each keep their own second.
    pub starts: TimestampFormatter,
    pub lists: ListCache,
}

/// `"@metadata":{...},"type":"sip"`: the same in every event.
pub fn metadata_members(agent: &Agent) -> Vec<u8> {
    JsonWriter::fragment(|w| {
        w.open("@metadata");
        w.ascii("beat", "sipbeat");
        w.ascii("type", "_doc");
        w.str("version", agent.version.as_bytes());
        w.close();
        w.ascii("type", "sip");
    })
}

/// `"ecs":{...},"agent":{...},"host":{...}`: the same in every event.
pub fn agent_members(agent: &Agent) -> Vec<u8> {
    JsonWriter::fragment(|w| {
        w.open("ecs");
        w.ascii("version", ECS_VERSION);
        w.close();
        w.open("agent");
        w.ascii("type", "sipbeat");
        w.str("version", agent.version.as_bytes());
        w.str("name", agent.name.as_bytes());
        w.str("id", agent.id.as_bytes());
        if let Some(ephemeral) = &agent.ephemeral_id {
            w.str("ephemeral_id", ephemeral.as_bytes());
        }
        w.close();
        w.open("host");
        w.str("name", agent.hostname.as_bytes());
        w.close();
    })
}

/// The value of the first of `names` (lower case) the message has, as a
/// correlation id: P-Charging-Vector's `icid-value`, Session-ID's own UUID
/// (RFC 7989, before any `;remote=`), any other header's value trimmed.
/// Header lines are scanned only when names are configured.
pub(super) fn correlation_id<'m>(message: &Message<'m>, names: &[Vec<u8>]) -> Option<&'m [u8]> {
    if names.is_empty() {
        return None;
    }
    let mut best: Option<(usize, &'m [u8])> = None;
    for (name, value) in message.raw_headers() {
        let Some(rank) = names.iter().position(|n| name.eq_ignore_ascii_case(n)) else {
            continue;
        };
        if best.is_some_and(|(better, _)| better <= rank) {
            continue;
        }
        let value = match names[rank].as_slice() {
            b"p-charging-vector" => crate::sip::header::param(value, b"icid-value"),
            b"session-id" => value.split(|&b| b == b';').next().map(<[u8]>::trim_ascii),
            _ => Some(value),
        };
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            best = Some((rank, value));
        }
    }
    best.map(|(_, value)| value)
}

/// The members of `observer` every live event repeats (a live sensor: who
/// observed the traffic); none for files read.
pub fn observer_members(agent: &Agent) -> Vec<u8> {
    if agent.ephemeral_id.is_none() {
        return Vec::new();
    }
    JsonWriter::fragment(|w| {
        w.str("hostname", agent.hostname.as_bytes());
        w.str("name", agent.name.as_bytes());
        w.ascii("type", "sensor");
    })
}

/// `observer`: the sensor's own members and where the packet came in.
pub(super) fn write_observer(w: &mut JsonWriter, env: &Env<'_>, ingress: &Ingress<'_>) {
    if env.observer.is_empty() && ingress.interface.is_none() && ingress.vlan.is_none() {
        return;
    }
    w.open("observer");
    if !env.observer.is_empty() {
        w.members(env.observer);
    }
    if ingress.interface.is_some() || ingress.vlan.is_some() {
        w.open("ingress");
        if let Some(name) = ingress.interface {
            w.open("interface");
            w.str("name", name.as_bytes());
            w.close();
        }
        if let Some(vlan) = ingress.vlan {
            w.open("vlan");
            let mut text = itoa::Buffer::new();
            w.str("id", text.format(vlan).as_bytes());
            w.close();
        }
        w.close();
    }
    w.close();
}

/// Appends the whole event for `message` to `out`, as one JSON object.
pub fn write_event(
    out: &mut Vec<u8>,
    env: &Env<'_>,
    memo: &mut Memo,
    flow_fields: &FlowFields,
    message: &Message<'_>,
    context: &Context,
    seen: &Seen,
) {
    let mut related = Related::default();
    let flow = &context.flow;
    related.ip(flow.src, flow_fields.src);
    related.ip(flow.dst, flow_fields.dst);

    let mut writer = JsonWriter::new(out);
    let w = &mut writer;
    let millis = memo.timestamps.millis(context.timestamp_ns);
    w.ascii_array("@timestamp", &millis);
    w.members(env.metadata);

    let code = match message.start {
        StartLine::Response { code, .. } => Some(code),
        StartLine::Request { .. } => None,
    };
    w.ascii(
        "status",
        if code.is_some_and(|c| c >= 400) {
            "Error"
        } else {
            "OK"
        },
    );

    let credentials = message
        .first_value(HeaderName::Authorization)
        .or_else(|| message.first_value(HeaderName::ProxyAuthorization));
    // Parsed once for sip.auth.* and user.name.
    let parsed_credentials = credentials
        .filter(|_| env.config.parse_authorization)
        .and_then(Credentials::parse);

    let escaped_body = write_sip(
        w,
        env,
        memo,
        message,
        context,
        seen,
        parsed_credentials,
        &mut related,
    );
    if let Some(name) = parsed_credentials
        .and_then(|c| c.param(b"username"))
        .filter(|u| is_user(u))
    {
        related.user(name);
        w.open("user");
        w.str("name", name);
        w.close();
    }

    write_event_fields(
        w,
        env,
        memo,
        (&millis, context.timestamp_ns),
        message,
        seen,
        credentials.is_some(),
        code,
        escaped_body,
    );
    w.members(&flow_fields.members);
    related.write(w);
    write_observer(w, env, &context.ingress);

    w.members(env.agent);
    writer.finish();
}

#[allow(clippy::too_many_arguments)]
fn write_event_fields(
    w: &mut JsonWriter,
    env: &Env<'_>,
    memo: &mut Memo,
    (millis, timestamp_ns): (&[u8; 24], u64),
    message: &Message<'_>,
    seen: &Seen,
    authenticated: bool,
    code: Option<u16>,
    escaped_body: Option<Range<usize>>,
) {
    w.open("event");
    w.members(if authenticated {
        br#""kind":"event","category":["network","authentication"],"type":["info","protocol"],"dataset":"sip""#
    } else {
        br#""kind":"event","category":["network"],"type":["info","protocol"],"dataset":"sip""#
    });
    // Requests act by their method, responses by the method they answer.
    let action_method = match message.start {
        StartLine::Request { method, .. } => Some(method),
        StartLine::Response { .. } => message.cseq.map(|c| c.method),
    };
    if let Some(method) = action_method {
        w.str_prefixed("action", "sip-", method, Case::Lower);
    }
    if let Some(cseq) = message.cseq {
        w.u64("sequence", u64::from(cseq.number));
    }
    match code {
        Some(200..=299) => w.ascii("outcome", "success"),
        Some(300..) => w.ascii("outcome", "failure"),
        _ => {}
    }
    if let StartLine::Response { reason, .. } = message.start {
        w.str("reason", reason);
    }
    // A response whose request was seen spans the transaction so far: from
    // the request's first transmission to now. Anything else is an instant,
    // as Packetbeat writes every event.
    match seen.request_ns {
        Some(request_ns) => {
            let start = memo.starts.millis(request_ns);
            w.ascii_array("start", &start);
            w.ascii_array("end", millis);
            w.u64("duration", timestamp_ns.saturating_sub(request_ns));
        }
        None => {
            w.ascii_array("start", millis);
            w.ascii_array("end", millis);
            w.members(br#""duration":0"#);
        }
    }
    if env.config.keep_original {
        match escaped_body {
            // The body ends the message and starts after its blank line
            // (ASCII), so the message escapes as its head followed by the
            // body's text, already escaped once for `sip.sdp.body.original`.
            Some(body) => {
                let head = &message.raw[..message.raw.len() - message.body.len()];
                w.str_then_escaped("original", head, body);
            }
            None => w.str("original", message.raw),
        }
    }
    w.close();
}

/// Appends `"network":{...},"source":{...},...` to `out`: the members that
/// depend on the flow alone (cached per flow, see [`super::flow`]).
pub(super) fn write_flow_members(
    out: &mut Vec<u8>,
    flow: &community_id::FlowKey,
    community_id: &[u8],
    direction: Option<&'static str>,
    src: &QuotedIp,
    dst: &QuotedIp,
) {
    JsonWriter::fragment_into(out, |w| {
        w.open("network");
        w.members(match (flow.protocol, flow.src.is_ipv4()) {
            (protocol::TCP, true) => br#""application":"sip","protocol":"sip","transport":"tcp","iana_number":"6","type":"ipv4""#,
            (protocol::TCP, false) => br#""application":"sip","protocol":"sip","transport":"tcp","iana_number":"6","type":"ipv6""#,
            (_, true) => br#""application":"sip","protocol":"sip","transport":"udp","iana_number":"17","type":"ipv4""#,
            (_, false) => br#""application":"sip","protocol":"sip","transport":"udp","iana_number":"17","type":"ipv6""#,
        });
        w.str("community_id", community_id);
        if let Some(direction) = direction {
            w.ascii("direction", direction);
        }
        w.close();
        // Source and destination as captured; Packetbeat's SIP module calls the
        // sender the client and the receiver the server, for responses too.
        for (key, ip, port) in [
            ("source", src, flow.src_port),
            ("destination", dst, flow.dst_port),
            ("client", src, flow.src_port),
            ("server", dst, flow.dst_port),
        ] {
            w.open(key);
            w.ip("ip", ip);
            w.u64("port", u64::from(port));
            w.close();
        }
    })
}

/// Writes `sip.*`; returns where the escaped text of `sip.sdp.body.original`
/// lies in the output, when there is one.
#[allow(clippy::too_many_arguments)]
fn write_sip<'m>(
    w: &mut JsonWriter,
    env: &Env<'_>,
    memo: &mut Memo,
    message: &'m Message<'m>,
    context: &Context,
    seen: &Seen,
    credentials: Option<Credentials<'m>>,
    related: &mut Related<'m>,
) -> Option<Range<usize>> {
    w.open("sip");
    match message.start {
        StartLine::Request { method, uri } => {
            w.ascii("type", SipType::Request.name());
            w.str_upper("method", method);
            write_uri(w, "uri", &uri, UriFields::All, Some(related));
        }
        StartLine::Response { code, reason } => {
            w.ascii("type", SipType::Response.name());
            w.u64("code", u64::from(code));
            w.str("status", reason);
        }
    }
    w.ascii("version", "2.0");
    w.ascii_array("timestamp", &memo.timestamps.nanos(context.timestamp_ns));

    if let Some(call_id) = message.call_id {
        w.str("call_id", call_id);
    }
    if let Some(cseq) = message.cseq {
        w.open("cseq");
        w.u64("code", u64::from(cseq.number));
        w.str_upper("method", cseq.method);
        w.close();
    }
    if let Some(from) = &message.from {
        write_party(w, "from", from, related);
    }
    if let Some(to) = &message.to {
        write_party(w, "to", to, related);
    }
    if let Some(contact) = &message.contact {
        write_contact(w, contact);
    }
    if message.first_value(HeaderName::Via).is_some() {
        // One via-parm per element; values are split only when one held a
        // list.
        w.open("via");
        let values = header_values(message, HeaderName::Via);
        if message.via_lists() {
            write_split_lists(w, "original", values, Case::AsIs);
        } else {
            write_list(w, "original", values, Case::AsIs);
        }
        w.close();
    }
    write_token_list(w, &mut memo.lists, "allow", message, HeaderName::Allow);
    write_token_list(
        w,
        &mut memo.lists,
        "supported",
        message,
        HeaderName::Supported,
    );
    if let Some(accept) = message.first_value(HeaderName::Accept) {
        w.str_lower("accept", accept);
    }
    if let Some(agent) = message.first_value(HeaderName::UserAgent) {
        w.open("user_agent");
        w.str("original", agent);
        w.close();
    }
    if let Some(hops) = message.max_forwards {
        w.u64("max_forwards", u64::from(hops));
    }
    // Packetbeat omits a zero length; so does sipbeat, for the same queries.
    if let Some(len) = message.content_length.filter(|&len| len > 0) {
        w.u64("content_length", len as u64);
    }
    if let Some(content_type) = message.content_type {
        w.str_lower("content_type", content_type);
    }
    if let Some(private) = message
        .list_values(HeaderName::PAssociatedUri)
        .next()
        .and_then(NameAddr::parse)
    {
        w.open("private");
        write_uri(w, "uri", &private.uri, UriFields::All, Some(related));
        w.close();
    }
    if let Some(credentials) = credentials {
        w.open("auth");
        w.str("scheme", credentials.scheme);
        if let Some(realm) = credentials.param(b"realm") {
            w.str("realm", realm);
        }
        if let Some(uri) = credentials.param(b"uri") {
            write_uri(w, "uri", &Uri::parse(uri), UriFields::NoUser, None);
        }
        w.close();
    }
    let escaped_body = (env.config.parse_body && is_sdp(message))
        .then(|| write_sdp(w, &mut memo.lists, message.body, related));
    if seen.retransmission {
        w.raw("retransmission", b"true");
    }
    if let Some(id) = correlation_id(message, env.correlation) {
        w.str("correlation_id", id);
    }
    w.close();
    escaped_body
}

/// Which URI parts a field set has (`sip.auth.uri` has no username).
#[derive(Clone, Copy, PartialEq, Eq)]
enum UriFields {
    All,
    NoUser,
}

/// Packetbeat skips user names that are a lone space or dash.
fn is_user(user: &[u8]) -> bool {
    !matches!(user, b"" | b" " | b"-")
}

fn write_uri<'m>(
    w: &mut JsonWriter,
    key: &str,
    uri: &Uri<'m>,
    fields: UriFields,
    related: Option<&mut Related<'m>>,
) {
    w.open(key);
    w.str("original", uri.original);
    if !uri.scheme.is_empty() {
        w.str("scheme", uri.scheme);
    }
    let user = uri.user.filter(|u| fields == UriFields::All && is_user(u));
    if let Some(user) = user {
        w.str("username", user);
    }
    if let Some(host) = uri.host {
        w.str("host", host);
    }
    if let Some(port) = uri.port {
        w.u64("port", u64::from(port));
    }
    w.close();
    if let Some(related) = related {
        if let Some(user) = user {
            related.user(user);
        }
        if let Some(host) = uri.host {
            related.host(host);
        }
    }
}

pub(super) fn write_party<'m>(
    w: &mut JsonWriter,
    key: &str,
    party: &'m NameAddr<'m>,
    related: &mut Related<'m>,
) {
    w.open(key);
    if let Some(display) = &party.display {
        w.str("display_info", display);
    }
    if let Some(tag) = party.tag {
        w.str("tag", tag);
    }
    write_uri(w, "uri", &party.uri, UriFields::All, Some(related));
    w.close();
}

/// The Contact header itself (Packetbeat wrongly reads To here). Its user
/// and host stay out of `related.*`, as in Packetbeat's events.
fn write_contact(w: &mut JsonWriter, contact: &NameAddr<'_>) {
    w.open("contact");
    if let Some(display) = &contact.display {
        w.str("display_info", display);
    }
    write_uri(w, "uri", &contact.uri, UriFields::All, None);
    if let Some(transport) = contact.uri.param(b"transport").filter(|t| !t.is_empty()) {
        w.str_lower("transport", transport);
    }
    if let Some(line) = contact.uri.param(b"line").filter(|l| !l.is_empty()) {
        w.str("line", line);
    }
    if let Some(expires) = contact
        .param(b"expires")
        .and_then(|e| crate::sip::text::parse_decimal(e, u64::from(u32::MAX)))
    {
        w.u64("expires", expires);
    }
    if let Some(q) = contact.param(b"q").filter(|q| is_qvalue(q)) {
        w.raw("q", q);
    }
    w.close();
}

/// `0`, `1`, `0.5`, `1.000`: digits with at most one inner dot, valid JSON as is.
fn is_qvalue(q: &[u8]) -> bool {
    let mut parts = q.splitn(2, |&b| b == b'.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next();
    !whole.is_empty()
        && whole.len() <= 3
        && whole.iter().all(u8::is_ascii_digit)
        && (whole == b"0" || !whole.starts_with(b"0"))
        && fraction
            .is_none_or(|f| !f.is_empty() && f.len() <= 6 && f.iter().all(u8::is_ascii_digit))
}

fn write_list<'v>(
    w: &mut JsonWriter,
    key: &str,
    mut values: impl Iterator<Item = &'v [u8]>,
    case: Case,
) {
    let Some(first) = values.next() else {
        return;
    };
    w.open_array(key);
    w.element(first, case);
    for value in values {
        w.element(value, case);
    }
    w.close_array();
}

/// `"key":[...]` of a token list header (Allow, Supported), lower-cased as
/// Packetbeat writes them. A list on one header line, the usual case, is
/// written once per distinct value ([`ListCache`]).
fn write_token_list(
    w: &mut JsonWriter,
    lists: &mut ListCache,
    key: &'static str,
    message: &Message<'_>,
    name: HeaderName,
) {
    let mut values = header_values(message, name);
    match (values.next(), values.next()) {
        (Some(only), None) => write_cached_list(w, lists, key, only, |w| {
            write_split_lists(w, key, std::iter::once(only), Case::Lower);
        }),
        _ => write_split_lists(w, key, header_values(message, name), Case::Lower),
    }
}

/// What `write` writes from `value` alone (a `"key":[...]` list, or
/// nothing), from the cache when `value` is short enough to be kept there.
fn write_cached_list(
    w: &mut JsonWriter,
    lists: &mut ListCache,
    key: &'static str,
    value: &[u8],
    write: impl FnOnce(&mut JsonWriter<'_>),
) {
    if value.len() > lists::MAX_VALUE {
        write(w);
    } else {
        let members = lists.members(key, value, write);
        if !members.is_empty() {
            w.members(members);
        }
    }
}

/// The values of every `name` header, in order.
fn header_values<'m>(
    message: &Message<'m>,
    name: HeaderName,
) -> impl Iterator<Item = &'m [u8]> + use<'m> {
    message.headers_named(name).map(|h| &*h.value)
}

/// `"key":[...]` from the comma-separated elements of `values` (as
/// [`Message::list_values`] splits them), or nothing when there are none.
/// Plain loops rather than that flattening, filtering iterator: about 12 %
/// fewer instructions per element of an Allow list (callgrind).
fn write_split_lists<'v>(
    w: &mut JsonWriter,
    key: &str,
    values: impl Iterator<Item = &'v [u8]>,
    case: Case,
) {
    let mut opened = false;
    for value in values {
        for element in crate::sip::text::split_list(value) {
            if element.is_empty() {
                continue;
            }
            if !opened {
                w.open_array(key);
                opened = true;
            }
            w.element(element, case);
        }
    }
    if opened {
        w.close_array();
    }
}

/// Packetbeat parses bodies whose Content-Type is `application/sdp` and that
/// are not content-encoded; sipbeat also accepts parameters and any case.
fn is_sdp(message: &Message<'_>) -> bool {
    let Some(content_type) = message.content_type else {
        return false;
    };
    let media_type = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default();
    !message.body.is_empty()
        && crate::sip::text::trim(media_type).eq_ignore_ascii_case(b"application/sdp")
        && message.first_value(HeaderName::ContentEncoding).is_none()
}

/// Writes `sip.sdp`; returns where the body's escaped text lies in the output.
fn write_sdp<'m>(
    w: &mut JsonWriter,
    lists: &mut ListCache,
    body: &'m [u8],
    related: &mut Related<'m>,
) -> Range<usize> {
    let sdp = Sdp::parse(body);
    w.open("sdp");
    if let Some(version) = sdp.version {
        w.str("version", version);
    }
    if let Some(origin) = sdp.origin {
        w.open("owner");
        if let Some(user) = origin.username {
            w.str("username", user);
            related.user(user);
        }
        w.str("session_id", origin.session_id);
        w.str("version", origin.session_version);
        // sdp.owner.ip is mapped as `ip`: a host name there would fail indexing.
        if let Some(ip) = parse_ip(origin.address) {
            let quoted = QuotedIp::new(&ip);
            w.ip("ip", &quoted);
            related.ip(ip, quoted);
        }
        w.close();
    }
    if let Some(name) = sdp.session_name {
        w.open("session");
        w.str("name", name);
        w.close();
    }
    if let Some(connection) = sdp.connection {
        w.open("connection");
        w.str("info", connection.info);
        w.str("address", connection.address);
        w.close();
        related.host(connection.address);
    }
    if !sdp.media().is_empty() {
        w.open_array("media");
        for media in sdp.media() {
            w.open_element();
            w.str("type", media.kind);
            if let Some(port) = media.port {
                w.u64("port", u64::from(port));
            }
            w.str("protocol", media.protocol);
            // An SBC or a phone model offers the same codecs in every
            // call, in the same lines: both lists are written once per
            // distinct text.
            write_cached_list(w, lists, "formats", media.formats, |w| {
                let formats = media.formats.split(|&b| b == b' ');
                write_list(w, "formats", formats.filter(|f| !f.is_empty()), Case::AsIs);
            });
            if let Some(connection) = media.connection {
                w.str("connection_address", connection.address);
            }
            write_cached_list(w, lists, "rtpmap", media.lines(), |w| {
                write_list(w, "rtpmap", media.rtpmaps(), Case::AsIs);
            });
            w.close();
        }
        w.close_array();
    }
    w.open("body");
    let escaped = w.str_escaped_at("original", body);
    w.close();
    w.close();
    escaped
}

fn parse_ip(text: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// `related.*` sets: insertion-ordered, de-duplicated, bounded.
#[derive(Default)]
pub(super) struct Related<'m> {
    ips: SmallSet<(IpAddr, QuotedIp), 4>,
    hosts: SmallSet<&'m [u8], 8>,
    users: SmallSet<&'m [u8], 8>,
}

impl<'m> Related<'m> {
    pub(super) fn ip(&mut self, ip: IpAddr, quoted: QuotedIp) {
        if !self.ips.items().any(|(seen, _)| *seen == ip) {
            self.ips.push((ip, quoted));
        }
    }

    fn host(&mut self, host: &'m [u8]) {
        if !host.is_empty() && !self.hosts.items().any(|seen| bytes_eq(seen, host)) {
            self.hosts.push(host);
        }
    }

    fn user(&mut self, user: &'m [u8]) {
        if is_user(user) && !self.users.items().any(|seen| bytes_eq(seen, user)) {
            self.users.push(user);
        }
    }

    pub(super) fn write(&self, w: &mut JsonWriter) {
        w.open("related");
        w.open_array("ip");
        for (_, quoted) in self.ips.items() {
            w.ip_element(quoted);
        }
        w.close_array();
        if !self.hosts.is_empty() {
            w.open_array("hosts");
            for host in self.hosts.items() {
                w.element(host, Case::AsIs);
            }
            w.close_array();
        }
        if !self.users.is_empty() {
            w.open_array("user");
            for user in self.users.items() {
                w.element(user, Case::AsIs);
            }
            w.close_array();
        }
        w.close();
    }
}

/// A set of at most `N` items kept in insertion order; further items are
/// ignored (a message naming more than eight hosts is pathological, and
/// `related.*` is a search aid, not a record).
struct SmallSet<T, const N: usize> {
    items: [Option<T>; N],
    len: usize,
}

impl<T, const N: usize> Default for SmallSet<T, N> {
    fn default() -> Self {
        SmallSet {
            items: [const { None }; N],
            len: 0,
        }
    }
}

impl<T: Copy, const N: usize> SmallSet<T, N> {
    /// Appends `item` unless full; callers check for duplicates.
    fn push(&mut self, item: T) {
        if self.len < N {
            self.items[self.len] = Some(item);
            self.len += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn items(&self) -> impl Iterator<Item = &T> + '_ {
        self.items[..self.len]
            .iter()
            .map(|i| i.as_ref().expect("filled"))
    }
}
