//! Arbitrary text as a config file, then merged with no flags: no panic,
//! no runaway time; an error is one line of bounded length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipbeat::config::{Config, FileConfig, Overrides};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let result =
        FileConfig::from_yaml("fuzz.yml", text).and_then(|file| Config::build(file, Overrides::default()));
    if let Err(error) = result {
        let message = error.to_string();
        assert!(message.chars().count() < 700, "{message}");
    }
});
