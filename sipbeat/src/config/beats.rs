//! A Beats config read as it is: a `packetbeat.yml` turned into sipbeat's
//! own shape before it is deserialized, so a Packetbeat user's file works
//! unchanged and a typo in a key sipbeat owns is still an error.
//!
//! - Dotted keys mean nesting, as in Beats (`output.kafka.hosts: [...]`),
//!   except under `output.kafka.options`, whose keys are librdkafka's.
//! - `packetbeat.protocols` is `protocols`; `packetbeat.interfaces.device`
//!   is `capture.interfaces` and `packetbeat.interfaces.internal_networks`
//!   is `internal_networks` (sipbeat's own keys win).
//! - Protocol blocks: other protocols' blocks, a SIP block's Packetbeat-only
//!   options (`send_request`, `transaction_timeout`, ...) and disabled
//!   blocks are taken out.
//! - Outputs: disabled ones are dropped; `output.kafka` in Beats' keys
//!   (`hosts`, `required_acks`, `partition.*`, `ssl.*`, `username`, ...)
//!   becomes sipbeat's Kafka settings; `output.console` is `stdout`;
//!   `output.file` with a `filename` writes `path/filename`.
//! - Whatever means nothing to sipbeat (processors, logging, flows...) is
//!   taken out and named in [`Normalized::ignored`], for one warning line.
//!   Anything else stays, for the deserializer to refuse.

use serde_norway::{Mapping, Value};

/// A config in sipbeat's shape, and what was left out of it.
#[derive(Debug)]
pub struct Normalized {
    pub value: Value,
    /// Keys that mean nothing to sipbeat, as the user wrote them.
    pub ignored: Vec<String>,
}

/// Top-level Beats settings sipbeat has no use for.
const BEATS_ONLY: &[&str] = &[
    "processors",
    "logging",
    "monitoring",
    "setup",
    "path",
    "seccomp",
    "max_procs",
    "cloud",
    "xpack",
    "instrumentation",
    "features",
    "migration",
    "timestamp",
    "keystore",
];

/// Options of Packetbeat's SIP analyser that sipbeat has no use for (it
/// publishes each message as it comes, whole).
const PACKETBEAT_SIP_ONLY: &[&str] = &[
    "send_request",
    "send_response",
    "transaction_timeout",
    "include_body_for",
    "index",
    "pipeline",
    "processors",
    "keep_null",
];

/// Options of Beats' Kafka output that librdkafka decides for itself.
const BEATS_KAFKA_ONLY: &[&str] = &[
    "version",
    "timeout",
    "broker_timeout",
    "keep_alive",
    "bulk_max_size",
    "bulk_flush_frequency",
    "channel_buffer_size",
    "worker",
    "workers",
    "codec",
    "metadata",
    "headers",
    "topics",
    "backoff",
    "max_retries",
    "kerberos",
    "allow_auto_topic_creation",
    "loadbalance",
];

/// Beats' `queue`: `queue.disk` is sipbeat's too (its path, max_size and
/// segment_size); the memory queue and the disk queue's tuning are
/// librdkafka's and the disk queue's own business.
fn queue(root: &mut Mapping, ignored: &mut Vec<String>) {
    let Some(Value::Mapping(queue)) = root.get_mut("queue") else {
        return;
    };
    let keys: Vec<String> = queue
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    for key in keys {
        if key != "disk" {
            queue.remove(key.as_str());
            ignored.push(format!("queue.{key}"));
        }
    }
    if let Some(Value::Mapping(disk)) = queue.get_mut("disk") {
        for key in [
            "read_ahead",
            "write_ahead",
            "retry_interval",
            "max_retry_interval",
        ] {
            if disk.remove(key).is_some() {
                ignored.push(format!("queue.disk.{key}"));
            }
        }
    }
    if queue.is_empty() {
        root.remove("queue");
    }
}

/// Normalizes a parsed config document.
pub fn normalize(document: Value) -> Result<Normalized, String> {
    let mut root = match expand(document, &mut Vec::new())? {
        Value::Null => Mapping::new(),
        Value::Mapping(map) => map,
        _ => return Err("expected a mapping of settings".into()),
    };
    let mut ignored = Vec::new();
    if let Some(packetbeat) = root.remove("packetbeat") {
        let Value::Mapping(packetbeat) = packetbeat else {
            return Err("packetbeat: expected a mapping".into());
        };
        for (key, value) in packetbeat {
            match key.as_str() {
                Some("protocols") => {
                    if root.contains_key("protocols") {
                        return Err("give protocols once: packetbeat.protocols or protocols".into());
                    }
                    root.insert("protocols".into(), value);
                }
                Some("interfaces") => interfaces(value, &mut root, &mut ignored)?,
                _ => ignored.push(format!("packetbeat.{}", name(&key))),
            }
        }
    }
    for key in BEATS_ONLY {
        if root.remove(*key).is_some() {
            ignored.push((*key).to_string());
        }
    }
    queue(&mut root, &mut ignored);
    if let Some(Value::Sequence(blocks)) = root.get_mut("protocols") {
        protocols(blocks, &mut ignored)?;
    }
    if let Some(Value::Mapping(http)) = root.get_mut("http") {
        // Beats' named pipes, pprof, socket permissions...
        let extra: Vec<Value> = http
            .keys()
            .filter(|k| !matches!(k.as_str(), Some("enabled" | "host" | "port")))
            .cloned()
            .collect();
        for key in extra {
            http.remove(&key);
            ignored.push(format!("http.{}", name(&key)));
        }
    }
    if let Some(Value::Mapping(outputs)) = root.get_mut("output") {
        output(outputs, &mut ignored)?;
    }
    Ok(Normalized {
        value: Value::Mapping(root),
        ignored,
    })
}

/// A key as text, for messages.
fn name(key: &Value) -> String {
    match key {
        Value::String(text) => text.clone(),
        other => serde_norway::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// `value` with its dotted keys nested; `path` is where it sits.
fn expand(value: Value, path: &mut Vec<String>) -> Result<Value, String> {
    match value {
        Value::Mapping(map) => {
            let verbatim =
                path.len() >= 3 && path[path.len() - 3..] == ["output", "kafka", "options"];
            let mut out = Mapping::new();
            for (key, value) in map {
                let parts: Vec<String> = match key.as_str() {
                    Some(text) if !verbatim && text.contains('.') => {
                        text.split('.').map(str::to_string).collect()
                    }
                    _ => vec![name(&key)],
                };
                if parts.iter().any(String::is_empty) {
                    return Err(format!("{}: a key with an empty part", name(&key)));
                }
                let depth = path.len();
                path.extend(parts.iter().cloned());
                let value = expand(value, path);
                path.truncate(depth);
                let key = if parts.len() == 1 {
                    key
                } else {
                    Value::String(parts[0].clone())
                };
                insert(&mut out, key, &parts[1..], value?, &name_path(path, &parts))?;
            }
            Ok(Value::Mapping(out))
        }
        Value::Sequence(items) => items
            .into_iter()
            .map(|item| expand(item, path))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Sequence),
        other => Ok(other),
    }
}

fn name_path(path: &[String], parts: &[String]) -> String {
    path.iter()
        .chain(parts)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(".")
}

/// Puts `value` at `key.rest...` in `map`, merging with what is there.
fn insert(
    map: &mut Mapping,
    key: Value,
    rest: &[String],
    value: Value,
    shown: &str,
) -> Result<(), String> {
    let value = rest.iter().rev().fold(value, |inner, part| {
        let mut nested = Mapping::new();
        nested.insert(Value::String(part.clone()), inner);
        Value::Mapping(nested)
    });
    match map.get_mut(&key) {
        None => {
            map.insert(key, value);
            Ok(())
        }
        Some(existing) => merge(existing, value, shown),
    }
}

fn merge(existing: &mut Value, value: Value, shown: &str) -> Result<(), String> {
    match (existing, value) {
        (Value::Mapping(existing), Value::Mapping(value)) => {
            for (key, inner) in value {
                let here = format!("{shown}.{}", name(&key));
                match existing.get_mut(&key) {
                    None => {
                        existing.insert(key, inner);
                    }
                    Some(slot) => merge(slot, inner, &here)?,
                }
            }
            Ok(())
        }
        _ => Err(format!("{shown} is given twice")),
    }
}

/// `packetbeat.interfaces`: the device and internal networks carry over.
fn interfaces(value: Value, root: &mut Mapping, ignored: &mut Vec<String>) -> Result<(), String> {
    let Value::Mapping(interfaces) = value else {
        return Err("packetbeat.interfaces: expected a mapping".into());
    };
    for (key, value) in interfaces {
        match (key.as_str(), value) {
            (Some("device"), Value::String(device))
                if device != "any" && device.parse::<u32>().is_err() =>
            {
                let capture = root
                    .entry("capture".into())
                    .or_insert_with(|| Value::Mapping(Mapping::new()));
                if let Value::Mapping(capture) = capture
                    && !capture.contains_key("interfaces")
                {
                    capture.insert(
                        "interfaces".into(),
                        Value::Sequence(vec![Value::String(device)]),
                    );
                }
            }
            (Some("internal_networks"), value) => {
                if !root.contains_key("internal_networks") {
                    root.insert("internal_networks".into(), value);
                }
            }
            (Some("device"), _) => {
                ignored.push("packetbeat.interfaces.device (any or an index: give -i)".into())
            }
            _ => ignored.push(format!("packetbeat.interfaces.{}", name(&key))),
        }
    }
    Ok(())
}

/// The protocol blocks: SIP ones kept (without Packetbeat-only options),
/// disabled and other protocols' blocks taken out.
fn protocols(blocks: &mut Vec<Value>, ignored: &mut Vec<String>) -> Result<(), String> {
    let mut kept = Vec::new();
    for block in blocks.drain(..) {
        let Value::Mapping(mut block) = block else {
            return Err("protocols: each entry is a mapping with a type".into());
        };
        let kind = block
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let enabled = block.remove("enabled");
        if !matches!(enabled, None | Some(Value::Bool(_))) {
            return Err(format!("protocols ({kind}): enabled must be true or false"));
        }
        if enabled == Some(Value::Bool(false)) {
            continue;
        }
        if kind != "sip" {
            if kind.is_empty() {
                return Err("protocols: an entry without a type".into());
            }
            ignored.push(format!("protocols: {kind}"));
            continue;
        }
        for key in PACKETBEAT_SIP_ONLY {
            if block.remove(*key).is_some() {
                ignored.push(format!("protocols (sip): {key}"));
            }
        }
        kept.push(Value::Mapping(block));
    }
    *blocks = kept;
    Ok(())
}

/// The outputs: disabled ones dropped, Beats' names and keys mapped.
fn output(outputs: &mut Mapping, ignored: &mut Vec<String>) -> Result<(), String> {
    let names: Vec<Value> = outputs.keys().cloned().collect();
    for key in names {
        let Some(Value::Mapping(settings)) = outputs.get_mut(&key) else {
            continue;
        };
        match settings.remove("enabled") {
            Some(Value::Bool(false)) => {
                outputs.remove(&key);
                continue;
            }
            None | Some(Value::Bool(true)) => {}
            Some(_) => {
                return Err(format!(
                    "output.{}.enabled must be true or false",
                    name(&key)
                ));
            }
        }
        match key.as_str() {
            Some("kafka") => kafka(settings, ignored)?,
            Some("console") => {
                for extra in settings.keys() {
                    ignored.push(format!("output.console.{}", name(extra)));
                }
                outputs.remove(&key);
                outputs.insert("stdout".into(), Value::Mapping(Mapping::new()));
            }
            Some("file") => {
                if let Some(filename) = settings.remove("filename") {
                    let directory = settings.get("path").and_then(Value::as_str).unwrap_or(".");
                    let joined = std::path::Path::new(directory).join(name(&filename));
                    settings.insert("path".into(), joined.display().to_string().into());
                }
                for extra in [
                    "rotate_every_kb",
                    "number_of_files",
                    "permissions",
                    "rotate_on_startup",
                    "codec",
                ] {
                    if settings.remove(extra).is_some() {
                        ignored.push(format!("output.file.{extra}"));
                    }
                }
            }
            Some(other @ ("elasticsearch" | "logstash" | "redis")) => {
                return Err(format!(
                    "output.{other}: sipbeat writes to kafka, a file or stdout (console); ship to Elasticsearch through Kafka (deploy/logstash, deploy/kafka-connect)"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Beats' Kafka output keys as sipbeat's Kafka settings.
fn kafka(settings: &mut Mapping, ignored: &mut Vec<String>) -> Result<(), String> {
    let mut options = match settings.remove("options") {
        Some(Value::Mapping(options)) => options,
        None => Mapping::new(),
        Some(_) => return Err("output.kafka.options: expected a mapping".into()),
    };
    if let Some(hosts) = settings.remove("hosts") {
        if settings.contains_key("brokers") {
            return Err("output.kafka: give hosts or brokers, not both".into());
        }
        settings.insert("brokers".into(), hosts);
    }
    if let Some(acks) = settings.remove("required_acks") {
        let acks = match acks.as_i64() {
            Some(-1) => "all",
            Some(1) => "1",
            Some(0) => "0",
            _ => return Err("output.kafka.required_acks must be -1, 0 or 1".into()),
        };
        settings.insert("acks".into(), acks.into());
        // Beats has no idempotent producer; librdkafka's needs acks=all.
        if acks != "all" && !settings.contains_key("idempotence") {
            settings.insert("idempotence".into(), false.into());
        }
    }
    for (beats, librdkafka) in [
        ("compression_level", "compression.level"),
        ("max_message_bytes", "message.max.bytes"),
        ("client_id", "client.id"),
        ("username", "sasl.username"),
        ("password", "sasl.password"),
    ] {
        if let Some(value) = settings.remove(beats) {
            set(&mut options, librdkafka, &value);
        }
    }
    let sasl = match settings.remove("sasl") {
        Some(Value::Mapping(sasl)) => {
            if let Some(mechanism) = sasl.get("mechanism") {
                set(&mut options, "sasl.mechanism", mechanism);
            }
            true
        }
        Some(_) => return Err("output.kafka.sasl: expected a mapping".into()),
        None => false,
    };
    let sasl = sasl || options.contains_key("sasl.username");
    let mut tls = false;
    match settings.remove("ssl") {
        Some(Value::Mapping(ssl)) => {
            tls = ssl.get("enabled").and_then(Value::as_bool).unwrap_or(true);
            for (key, value) in &ssl {
                match key.as_str() {
                    Some("enabled") => {}
                    Some("certificate_authorities") => {
                        let authority = match value {
                            Value::Sequence(list) if list.len() == 1 => list[0].clone(),
                            Value::String(_) => value.clone(),
                            _ => {
                                return Err("output.kafka.ssl.certificate_authorities: give one CA file (a bundle for several)".into());
                            }
                        };
                        set(&mut options, "ssl.ca.location", &authority);
                    }
                    Some("certificate") => set(&mut options, "ssl.certificate.location", value),
                    Some("key") => set(&mut options, "ssl.key.location", value),
                    Some("key_passphrase") => set(&mut options, "ssl.key.password", value),
                    Some("verification_mode") => match value.as_str() {
                        Some("none") => set(&mut options, "enable.ssl.certificate.verification", &"false".into()),
                        Some("full" | "strict" | "certificate") => {}
                        _ => return Err("output.kafka.ssl.verification_mode must be full, strict, certificate or none".into()),
                    },
                    _ => ignored.push(format!("output.kafka.ssl.{}", name(key))),
                }
            }
        }
        Some(_) => return Err("output.kafka.ssl: expected a mapping".into()),
        None => {}
    }
    if (sasl || tls) && !options.contains_key("security.protocol") {
        let protocol = match (sasl, tls) {
            (true, true) => "SASL_SSL",
            (true, false) => "SASL_PLAINTEXT",
            _ => "SSL",
        };
        set(&mut options, "security.protocol", &protocol.into());
        if sasl && !options.contains_key("sasl.mechanism") {
            set(&mut options, "sasl.mechanism", &"PLAIN".into());
        }
    }
    match settings.remove("partition") {
        // Keyed events go to the partition their key hashes to, as Beats'
        // default hash partitioner does.
        Some(Value::Mapping(partition)) => {
            for (strategy, _) in partition {
                match strategy.as_str() {
                    Some("hash") => {}
                    Some("random" | "round_robin") => {
                        set(&mut options, "partitioner", &"random".into())
                    }
                    _ => {
                        return Err(format!(
                            "output.kafka.partition.{}: expected hash, random or round_robin",
                            name(&strategy)
                        ));
                    }
                }
            }
        }
        Some(_) => return Err("output.kafka.partition: expected a mapping".into()),
        None => {}
    }
    for key in BEATS_KAFKA_ONLY {
        if settings.remove(*key).is_some() {
            ignored.push(format!("output.kafka.{key}"));
        }
    }
    if !options.is_empty() {
        settings.insert("options".into(), Value::Mapping(options));
    }
    Ok(())
}

/// Sets the librdkafka property `name` (values are strings to it).
fn set(options: &mut Mapping, name: &str, value: &Value) {
    let text = match value {
        Value::String(text) => text.clone(),
        other => serde_norway::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    };
    options.insert(name.into(), text.into());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(yaml: &str) -> Result<Normalized, String> {
        normalize(serde_norway::from_str(yaml).unwrap())
    }

    #[test]
    fn dotted_keys_nest_and_merge() {
        let n = normalized("output.kafka.hosts: [k:9092]\noutput.kafka.topic: sip\nhttp:\n  port: 1\nhttp.enabled: true\n").unwrap();
        let expected: Value = serde_norway::from_str(
            "output:\n  kafka:\n    brokers: [k:9092]\n    topic: sip\nhttp:\n  port: 1\n  enabled: true\n",
        )
        .unwrap();
        assert_eq!(n.value, expected);
        assert!(
            normalized("a.b: 1\na: {b: 2}\n")
                .unwrap_err()
                .contains("a.b is given twice")
        );
        // librdkafka's own dotted names stay whole.
        let n = normalized("output.kafka.options:\n  security.protocol: SSL\n").unwrap();
        assert_eq!(
            n.value["output"]["kafka"]["options"]["security.protocol"],
            Value::from("SSL")
        );
    }

    #[test]
    fn packetbeat_namespace_and_what_means_nothing_here() {
        let n = normalized(
            "packetbeat.interfaces.device: eth1\npacketbeat.interfaces.snaplen: 1514\npacketbeat.flows: {timeout: 30s}\npacketbeat.protocols:\n- type: dns\n  ports: [53]\n- type: sip\n  ports: [5060]\n  send_request: true\n- type: sip\n  enabled: false\n  ports: [5070]\nprocessors: [{add_host_metadata: {}}]\nlogging.level: info\n",
        )
        .unwrap();
        assert_eq!(n.value["capture"]["interfaces"][0], Value::from("eth1"));
        let Value::Sequence(blocks) = &n.value["protocols"] else {
            panic!("protocols");
        };
        assert_eq!(blocks.len(), 1, "dns and the disabled block are out");
        assert!(blocks[0].get("send_request").is_none());
        assert_eq!(
            n.ignored,
            [
                "packetbeat.interfaces.snaplen",
                "packetbeat.flows",
                "processors",
                "logging",
                "protocols: dns",
                "protocols (sip): send_request"
            ]
        );
    }

    #[test]
    fn beats_kafka_keys() {
        let n = normalized(
            "output.elasticsearch:\n  enabled: false\n  hosts: [es:9200]\noutput.kafka:\n  hosts: [k1:9092]\n  topic: sip\n  required_acks: 1\n  compression: gzip\n  max_message_bytes: 1000000\n  partition.round_robin: {reachable_only: false}\n  username: u\n  password: p\n  ssl.certificate_authorities: [/ca.pem]\n  bulk_max_size: 2048\n",
        )
        .unwrap();
        let kafka = &n.value["output"]["kafka"];
        assert!(n.value["output"].get("elasticsearch").is_none());
        assert_eq!(kafka["brokers"][0], Value::from("k1:9092"));
        assert_eq!(kafka["acks"], Value::from("1"));
        assert_eq!(kafka["idempotence"], Value::from(false));
        let options = &kafka["options"];
        assert_eq!(options["message.max.bytes"], Value::from("1000000"));
        assert_eq!(options["partitioner"], Value::from("random"));
        assert_eq!(options["security.protocol"], Value::from("SASL_SSL"));
        assert_eq!(options["sasl.mechanism"], Value::from("PLAIN"));
        assert_eq!(options["ssl.ca.location"], Value::from("/ca.pem"));
        assert_eq!(n.ignored, ["output.kafka.bulk_max_size"]);
        let es = normalized("output.elasticsearch.hosts: [es:9200]\n").unwrap_err();
        assert!(es.contains("output.elasticsearch"), "{es}");
        let console = normalized("output.console: {pretty: true}\n").unwrap();
        assert!(console.value["output"].get("stdout").is_some());
        let file = normalized("output.file: {path: /var/x, filename: sip.ndjson}\n").unwrap();
        assert_eq!(
            file.value["output"]["file"]["path"],
            Value::from("/var/x/sip.ndjson")
        );
    }
}
