//! Shared helpers for integration tests: where test data lives, running the
//! pipeline into memory, and the external oracles (tshark, ecs-diff).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sipbeat::config::{Config, FileConfig, Overrides};
use sipbeat::output::{OutputError, Sink};
use sipbeat::stats::Stats;

/// The repository's `testdata/` (permissively licensed captures).
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// `../shared/corpus` beside the repository (GPL/AGPL/LGPL-sourced captures
/// stay there), or `$SIPBEAT_CORPUS`. `None` when absent.
pub fn shared_corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("SIPBEAT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    dir.is_dir().then_some(dir)
}

/// Whether missing oracles and data must fail the test (CI sets this through
/// `cargo xtask test`) instead of skipping it with a note.
pub fn oracles_required() -> bool {
    std::env::var_os("SIPBEAT_REQUIRE_ORACLES").is_some_and(|v| v != "0")
}

/// Skips (or, when oracles are required, fails) a test that lacks `what`.
pub fn missing(what: &str) {
    assert!(
        !oracles_required(),
        "{what} is required (SIPBEAT_REQUIRE_ORACLES is set)"
    );
    eprintln!("skipped: {what} not available; run `cargo xtask test` for the full suite");
}

/// Events collected in memory, with their keys.
#[derive(Default)]
pub struct Collected {
    pub events: Vec<Vec<u8>>,
    pub keys: Vec<Option<Vec<u8>>>,
}

impl Sink for Collected {
    fn publish(&mut self, json: &[u8], key: Option<&[u8]>) -> Result<(), OutputError> {
        self.events.push(json.to_vec());
        self.keys.push(key.map(<[u8]>::to_vec));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

/// Default config with `ports`.
pub fn config_with_ports(ports: &[u16]) -> Config {
    Config::build(
        FileConfig::default(),
        Overrides {
            ports: Some(ports.to_vec()),
            ..Overrides::default()
        },
    )
    .expect("valid config")
}

/// Runs `file` through the pipeline; returns the parsed events and stats.
pub fn read_events(file: &Path, config: &Config) -> (Vec<Value>, Stats) {
    let mut sink = Collected::default();
    let stats = sipbeat::read::read_files(&[file], config, &mut sink).expect("read");
    let events = sink
        .events
        .iter()
        .map(|json| serde_json::from_slice(json).expect("every event is valid JSON"))
        .collect();
    (events, stats)
}

/// Nested JSON to `a.b.c` keys, arrays kept whole (as Packetbeat's goldens).
pub fn flatten(value: &Value) -> Map<String, Value> {
    fn walk(prefix: &str, value: &Value, out: &mut Map<String, Value>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let name = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&name, child, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.clone());
            }
        }
    }
    let mut out = Map::new();
    walk("", value, &mut out);
    out
}

/// Runs tshark with `args`; `None` when tshark is not installed.
pub fn tshark(args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("tshark")
        .args(args)
        .output()
        .ok()?;
    assert!(
        output.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8(output.stdout).expect("tshark prints text"))
}
