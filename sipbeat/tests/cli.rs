//! The `sipbeat` binary as a user meets it: output, summary, exit codes and
//! one-line errors.

mod common;

use std::process::{Command, Output};

fn sipbeat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sipbeat"))
        .args(args)
        .output()
        .expect("sipbeat runs")
}

fn bundled() -> String {
    common::testdata()
        .join("pcaps/suricata-verify/sip-method--sip.pcap")
        .display()
        .to_string()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn read_writes_ndjson_and_a_summary() {
    let output = sipbeat(&["read", &bundled()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<&[u8]> = output
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        81 + 6,
        "a message event each, and 6 call records"
    );
    let mut calls = 0;
    for line in &lines {
        let event = sipbeat_testkit::json::parse_event(line).expect("one JSON object per line");
        assert_eq!(event["@metadata"]["beat"], "sipbeat");
        calls += usize::from(event["event"]["dataset"] == "sip.call");
    }
    assert_eq!(calls, 6);
    let summary = stderr(&output);
    assert!(summary.contains("691 frames"), "{summary}");
    assert!(summary.contains("81 SIP messages, 87 events"), "{summary}");
    assert!(summary.contains("calls: started=6 records=6"), "{summary}");
    assert!(summary.contains("not_sip=21"), "{summary}");
    assert!(summary.contains("messages/s"), "{summary}");
}

#[test]
fn json_log_format_gives_one_object_per_line() {
    let output = sipbeat(&["--log-format", "json", "read", &bundled()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stderr(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let stats: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON");
    assert_eq!(stats["log.level"], "info");
    assert_eq!(stats["message"], "stats");
    assert_eq!(stats["sipbeat.stats"]["frames"], 691);
    assert_eq!(stats["sipbeat.stats"]["events"], 87);
    assert_eq!(stats["sipbeat.stats"]["calls"]["records"], 6);
    assert_eq!(stats["sipbeat.stats"]["rejected"]["not_sip"], 21);
    let failed = sipbeat(&["read", "--log-format=json", "/nonexistent.pcap"]);
    assert!(!failed.status.success());
    let error: serde_json::Value =
        serde_json::from_str(stderr(&failed).trim()).expect("one JSON line");
    assert_eq!(error["log.level"], "error");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent.pcap"),
        "{error}"
    );
}

fn events(stdout: &[u8]) -> Vec<serde_json::Value> {
    stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("JSON"))
        .collect()
}

/// A real `packetbeat.yml` (dotted keys, a UDP and a TCP SIP block, other
/// protocols, Beats' name/tags/fields, `output.kafka` in Beats' keys,
/// processors, logging...) is read as is: the same `sip.*` as the
/// defaults, Beats' metadata where Beats puts it, one warning line.
#[test]
fn a_packetbeat_yml_is_read_as_is() {
    let config = common::testdata().join("config/packetbeat.yml");
    let udp = bundled();
    let tcp = common::testdata()
        .join("pcaps/suricata-verify/sip-tcp-method--sip-tcp.pcap")
        .display()
        .to_string();
    let with = sipbeat(&[
        "read",
        "-q",
        "-c",
        config.to_str().unwrap(),
        "-o",
        "stdout",
        &udp,
        &tcp,
    ]);
    assert!(with.status.success(), "{}", stderr(&with));
    let warning = stderr(&with);
    assert_eq!(warning.lines().count(), 1, "{warning}");
    assert!(
        warning.starts_with("sipbeat: warning: config: left out"),
        "{warning}"
    );
    for named in [
        "processors",
        "protocols: dns",
        "protocols (sip): send_request",
        "packetbeat.flows",
    ] {
        assert!(warning.contains(named), "{named}: {warning}");
    }
    assert!(
        !warning.contains("http"),
        "a disabled block is honoured, not ignored: {warning}"
    );
    let without = sipbeat(&["read", "-q", &udp, &tcp]);
    let (with, without) = (events(&with.stdout), events(&without.stdout));
    assert_eq!(with.len(), without.len());
    assert!(with.iter().any(|e| e["network"]["transport"] == "tcp"));
    for (event, plain) in with.iter().zip(&without) {
        assert_eq!(event["sip"], plain["sip"]);
        assert_eq!(event["agent"]["name"], "sbc-lab-1");
        assert_eq!(event["fields"]["site"], "fra1");
        let tcp = event["network"]["transport"] == "tcp";
        let block_tag = if tcp { "sip-tcp" } else { "sip-udp" };
        assert_eq!(event["tags"], serde_json::json!(["voip", "lab", block_tag]));
        assert_eq!(event["fields"]["transport_block"] == "tcp", tcp, "{event}");
        // internal_networks: [private] from packetbeat.interfaces.
        assert!(event["network"]["direction"].is_string(), "{event}");
        assert!(plain.get("tags").is_none() && plain["network"].get("direction").is_none());
    }
    // A typo in a key sipbeat owns is still an error.
    let dir = common::ScratchDir::new("pbyml");
    let typo = dir.join("typo.yml");
    std::fs::write(&typo, "output.kafka:\n  hosts: [k:9092]\n  topik: sip\n").unwrap();
    let failed = sipbeat(&["read", "-c", typo.to_str().unwrap(), &udp]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(stderr(&failed).contains("topik"), "{}", stderr(&failed));
    let elastic = dir.join("es.yml");
    std::fs::write(&elastic, "output.elasticsearch.hosts: [es:9200]\n").unwrap();
    let failed = sipbeat(&["read", "-c", elastic.to_str().unwrap(), &udp]);
    assert!(
        stderr(&failed).contains("output.elasticsearch"),
        "{}",
        stderr(&failed)
    );
}

#[test]
fn a_bare_boolean_flag_never_takes_the_file_name() {
    let output = sipbeat(&["read", "--keep-original", &bundled()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout.split(|&b| b == b'\n').count() - 1, 87);
    let usage = sipbeat(&["read", "--keep-original", "false", &bundled()]);
    assert_eq!(usage.status.code(), Some(1), "false is a file name here");
    let usage = sipbeat(&["read", "--no-such-flag", &bundled()]);
    assert_eq!(
        usage.status.code(),
        Some(2),
        "usage errors: clap's status, as the README says"
    );
}

#[test]
fn switches_and_file_output() {
    let dir = common::ScratchDir::new("cli");
    let out = dir.join("events.ndjson");
    let spec = format!("file:{}", out.display());
    let output = sipbeat(&[
        "read",
        "-q",
        "--keep-original=false",
        "--parse-body=false",
        "-o",
        &spec,
        &bundled(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
    assert!(output.stderr.is_empty(), "quiet means no summary");
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 87);
    assert!(
        !text.contains("\"original\":\"INVITE"),
        "event.original is off"
    );
    assert!(!text.contains("\"sdp\""), "body parsing is off");
    assert!(text.contains("\"auth\""), "authorization parsing stays on");
}

#[test]
fn config_file_sets_ports_and_flags_override_it() {
    let dir = common::ScratchDir::new("cfg");
    let config = dir.join("sipbeat.yml");
    std::fs::write(&config, "protocols:\n  - type: sip\n    ports: [5999]\n").unwrap();
    let config = config.display().to_string();
    let none = sipbeat(&["read", "-q", "-c", &config, &bundled()]);
    assert!(none.status.success());
    assert!(none.stdout.is_empty(), "no SIP on port 5999");
    let some = sipbeat(&[
        "read",
        "-q",
        "-c",
        &config,
        "--ports",
        "5999,5060",
        &bundled(),
    ]);
    assert_eq!(
        some.stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        87
    );
}

#[test]
fn mistakes_give_one_line_errors_and_fail() {
    let dir = common::ScratchDir::new("err");
    let bad_yaml = dir.join("bad.yml");
    std::fs::write(&bad_yaml, "protocols:\n  - type: sip\n    port: [5060]\n").unwrap();
    let limits = dir.join("limits.yml");
    std::fs::write(&limits, "reassembly:\n  tcp_max_streams: 0\n").unwrap();
    let not_pcap = dir.join("notes.txt");
    std::fs::write(&not_pcap, "hello, not a capture").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["read".into(), "/nonexistent/file.pcap".into()],
            "cannot open /nonexistent/file.pcap",
        ),
        // The OS's reason, once (not again as the error's source).
        (
            vec!["read".into(), "/nonexistent/file.pcap".into()],
            "No such file or directory",
        ),
        (
            vec!["read".into(), dir.display().to_string()],
            "is a directory",
        ),
        (
            vec![
                "read".into(),
                "-o".into(),
                "file:/nonexistent/dir/events.ndjson".into(),
                bundled(),
            ],
            "cannot open output file /nonexistent/dir/events.ndjson: No such file or directory",
        ),
        (
            vec![
                "read".into(),
                "-o".into(),
                "file:/dev/full".into(),
                bundled(),
            ],
            "No space left on device",
        ),
        (
            vec!["read".into(), not_pcap.display().to_string()],
            "not a pcap or pcapng file",
        ),
        (
            vec![
                "read".into(),
                "-c".into(),
                bad_yaml.display().to_string(),
                bundled(),
            ],
            "unknown field `port`",
        ),
        (
            vec![
                "read".into(),
                "-c".into(),
                "/nonexistent.yml".into(),
                bundled(),
            ],
            "cannot read config /nonexistent.yml: No such file or directory",
        ),
        (
            vec!["read".into(), "--ports".into(), "0".into(), bundled()],
            "0 is not a port",
        ),
        (
            vec![
                "read".into(),
                "-c".into(),
                limits.display().to_string(),
                bundled(),
            ],
            "reassembly: tcp_max_streams must be at least 1",
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = sipbeat(&args);
        let message = stderr(&output);
        assert!(!output.status.success(), "{args:?} must fail");
        assert_eq!(
            message.matches(expected).count(),
            1,
            "{args:?}: said once: {message}"
        );
        // One line; after a failed output, the summary comes first: what
        // was read is never left unsaid.
        let lines: Vec<&str> = message.trim_end().lines().collect();
        let error = lines.last().unwrap();
        assert!(error.starts_with("sipbeat: error: "), "{message}");
        if error.contains("output failed") {
            assert!(lines[0].contains("691 frames"), "{message}");
            assert!(
                lines[..lines.len() - 1]
                    .iter()
                    .all(|l| !l.contains("error"))
            );
        } else {
            assert_eq!(lines.len(), 1, "{args:?}: one line: {message}");
        }
    }
    // clap's own usage errors (unknown flag, bad output spec) fail too.
    assert!(
        !sipbeat(&["read", "--output", "kafka://x", &bundled()])
            .status
            .success()
    );
}

#[test]
fn a_config_that_is_no_config_fails_at_once_in_one_line() {
    let dir = common::ScratchDir::new("cli-hostile-config");
    let deep = dir.join("deep.yml");
    std::fs::write(
        &deep,
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
    )
    .unwrap();
    for config in [std::path::Path::new("/dev/zero"), &deep] {
        let started = std::time::Instant::now();
        let output = sipbeat(&["read", "-c", config.to_str().unwrap(), &bundled()]);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{message}");
        assert_eq!(message.trim_end().lines().count(), 1, "{message}");
        assert!(message.len() < 400, "{message}");
        // Generous: the point is no minutes of CPU and no gigabytes.
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
}
