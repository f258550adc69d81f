//! `fields.yml` documents every field sipbeat emits, and covers Packetbeat's
//! SIP field set, so index templates built from it map every event fully.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use sipbeat::fields::{Field, fields as declared};

/// The compiled-in catalogue is the file on disk.
#[test]
fn compiled_catalogue_is_the_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fields.yml");
    let on_disk: Vec<Field> =
        serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(on_disk, declared());
}

/// Dotted names of every leaf; arrays of objects contribute their members.
fn leaves(prefix: &str, value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(&name, child, out);
            }
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            for item in items {
                leaves(prefix, item, out);
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

#[test]
fn every_emitted_field_is_declared() {
    let objects: Vec<String> = declared()
        .into_iter()
        .filter(|f| f.kind == "object")
        .map(|f| format!("{}.", f.name))
        .collect();
    let declared: BTreeSet<String> = declared().into_iter().map(|f| f.name).collect();
    let mut captures: Vec<std::path::PathBuf> = Vec::new();
    for dir in ["pcaps/packetbeat", "pcaps/suricata-verify", "pcaps/zeek"] {
        for entry in std::fs::read_dir(common::testdata().join(dir)).unwrap() {
            captures.push(entry.unwrap().path());
        }
    }
    if let Some(corpus) = common::shared_corpus() {
        for file in [
            "pcaps/sngrep/aaa.pcap",
            "pcaps/heplify/sip_ipv6_udp.pcap",
            "packetbeat/pcaps/sip_authenticated_register.pcap",
        ] {
            captures.push(corpus.join(file));
        }
    }
    let config = common::config_with_ports(&[5060, 5062]);
    let mut emitted = BTreeSet::new();
    let mut records = 0;
    for capture in &captures {
        let (events, calls, _) = common::read_messages_and_calls(capture, &config);
        records += calls.len();
        for event in events.iter().chain(&calls) {
            leaves("", event, &mut emitted);
        }
    }
    assert!(records > 0, "call records' fields are checked too");
    // Beats' metadata, network.direction and an interface name: the
    // repository's packetbeat.yml over a pcapng whose interface is named.
    let dir = common::ScratchDir::new("fields-observer");
    let named = dir.join("named.pcapng");
    let mut frames = Vec::new();
    sipbeat::capture::pcap::PcapFile::open(common::testdata().join("pcaps/packetbeat/sip.pcap"))
        .unwrap()
        .for_each_frame(|f| frames.push((f.timestamp_ns / 1000, f.data.to_vec())))
        .unwrap();
    let interface = sipbeat_testkit::capture::PcapngInterface {
        name: Some("eth7"),
        ..Default::default()
    };
    std::fs::write(
        &named,
        sipbeat_testkit::capture::pcapng(false, interface, &frames),
    )
    .unwrap();
    let text = std::fs::read_to_string(common::testdata().join("config/packetbeat.yml")).unwrap();
    let beats = sipbeat::config::Config::build(
        sipbeat::config::FileConfig::parse(&text).unwrap(),
        sipbeat::config::Overrides {
            output: Some(sipbeat::output::Output::Stdout {}),
            ..Default::default()
        },
    )
    .unwrap();
    let (events, calls, _) = common::read_messages_and_calls(&named, &beats);
    assert!(!events.is_empty() && !calls.is_empty());
    for event in &events {
        assert_eq!(event["observer"]["ingress"]["interface"]["name"], "eth7");
        leaves("", event, &mut emitted);
    }
    for call in &calls {
        leaves("", call, &mut emitted);
    }
    // Under an object-typed field (Beats' `fields`), any key.
    emitted.retain(|name| !objects.iter().any(|prefix| name.starts_with(prefix)));
    let undeclared: Vec<&String> = emitted.difference(&declared).collect();
    assert!(
        undeclared.is_empty(),
        "fields missing from fields.yml: {undeclared:?}"
    );
    assert!(
        emitted.len() > 90,
        "the captures exercise most fields ({})",
        emitted.len()
    );
}

#[test]
fn packetbeat_sip_fields_are_all_declared() {
    let text = std::fs::read_to_string(common::testdata().join("packetbeat/fields.yml")).unwrap();
    let packetbeat: Value = serde_norway::from_str(&text).unwrap();
    let mut names = BTreeSet::new();
    for group in packetbeat[0]["fields"].as_array().unwrap() {
        for field in group["fields"].as_array().unwrap() {
            names.insert(format!("sip.{}", field["name"].as_str().unwrap()));
        }
    }
    assert!(names.len() > 60);
    let declared = declared();
    for name in &names {
        let field = declared.iter().find(|f| &f.name == name);
        let field = field.unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(field.origin, "packetbeat", "{name}");
    }
}

#[test]
fn declarations_are_complete_and_unique() {
    let declared = declared();
    let types = [
        "date",
        "date_nanos",
        "keyword",
        "long",
        "ip",
        "object",
        "boolean",
    ];
    let mut seen = BTreeSet::new();
    for field in &declared {
        assert!(seen.insert(&field.name), "{} declared twice", field.name);
        assert!(
            types.contains(&field.kind.as_str()),
            "{}: type {}",
            field.name,
            field.kind
        );
        assert!(
            ["ecs", "beats", "packetbeat", "sipbeat"].contains(&field.origin.as_str()),
            "{}",
            field.name
        );
        assert!(
            !field.description.is_empty(),
            "{} has no description",
            field.name
        );
    }
}

/// The committed template is what `sipbeat export-template` prints, and it
/// maps every declared field (so every emitted one) with its declared type.
#[test]
fn deployed_index_template_maps_every_field() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/elasticsearch/sipbeat-index-template.json");
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        committed,
        sipbeat::fields::index_template(),
        "deploy/ is stale: run `sipbeat export-template > deploy/elasticsearch/sipbeat-index-template.json`"
    );
    let properties = &committed["template"]["mappings"]["properties"];
    for field in declared()
        .iter()
        .filter(|f| !f.name.starts_with("@metadata."))
    {
        let mut node = properties;
        let parts: Vec<&str> = field.name.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            node = &node[*part]["properties"];
        }
        let mapping = &node[*parts.last().unwrap()];
        assert_eq!(
            mapping["type"],
            field.kind.as_str(),
            "{} mapped as {mapping}",
            field.name
        );
    }
    let event = &properties["event"]["properties"]["original"];
    assert_eq!(
        event["index"], false,
        "event.original is stored, not indexed"
    );
    assert_eq!(
        properties["sip"]["properties"]["timestamp"]["type"],
        "date_nanos"
    );
}

/// The template's lifecycle and data stream fields: it names the ILM policy
/// shipped beside it (which rolls over and deletes), composes the stock
/// `logs@*` defaults it outranks without failing where they are missing,
/// and maps `data_stream.*` as constant keywords.
#[test]
fn template_carries_a_lifecycle_and_data_stream_mappings() {
    let template = sipbeat::fields::index_template();
    let settings = &template["template"]["settings"];
    assert_eq!(
        settings["index.lifecycle.name"],
        sipbeat::fields::ILM_POLICY
    );
    let policy_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/elasticsearch/sipbeat-ilm-policy.json");
    let policy: Value =
        serde_json::from_str(&std::fs::read_to_string(&policy_path).unwrap()).unwrap();
    let phases = &policy["policy"]["phases"];
    assert!(phases["hot"]["actions"]["rollover"].is_object(), "{policy}");
    assert!(
        phases["delete"]["actions"]["delete"].is_object(),
        "{policy}"
    );
    let composed: Vec<&str> = template["composed_of"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(composed.contains(&"logs@settings") && composed.contains(&"logs@mappings"));
    assert_eq!(
        template["ignore_missing_component_templates"],
        template["composed_of"]
    );
    assert!(
        template["priority"].as_u64().unwrap() > 100,
        "above logs-*-*"
    );
    let data_stream = &template["template"]["mappings"]["properties"]["data_stream"]["properties"];
    for (field, value) in [
        ("type", Some("logs")),
        ("dataset", Some("sipbeat")),
        ("namespace", None),
    ] {
        assert_eq!(data_stream[field]["type"], "constant_keyword", "{field}");
        assert_eq!(data_stream[field]["value"].as_str(), value, "{field}");
    }
}
