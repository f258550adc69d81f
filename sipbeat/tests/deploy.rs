//! The DaemonSet's ConfigMap holds a config sipbeat accepts, in host mode.

use serde::Deserialize;
use sipbeat::capture::CaptureMode;
use sipbeat::config::{Config, FileConfig, Overrides};

#[test]
fn daemonset_config_is_valid_and_in_host_mode() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/kubernetes/sipbeat-daemonset.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut configs = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let value = serde_norway::Value::deserialize(document).unwrap();
        if value["kind"] == "ConfigMap" {
            configs.push(value["data"]["sipbeat.yml"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(configs.len(), 1, "one ConfigMap with sipbeat.yml");
    let file = FileConfig::parse(&configs[0]).unwrap();
    let config = Config::build(file, Overrides::default()).unwrap();
    assert_eq!(config.capture.mode, CaptureMode::Host);
}
