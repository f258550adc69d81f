//! Any bytes through the JSON string escaper, in each case mode: accepted
//! exactly when they are UTF-8, and then the output, read back by a strict
//! JSON parser, is the text (case-folded). Long values and every mix of
//! escapes reach the vector paths of the CPU that fuzzes (AVX-512 and its
//! VBMI2 expansion where present), and the address sanitizer checks their
//! whole-vector stores stay inside what was reserved.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipbeat::event::json::{Case, NotUtf8, escape_into};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, value)) = data.split_first() else {
        return;
    };
    let case = [Case::AsIs, Case::Lower, Case::Upper][usize::from(mode % 3)];
    // Inside an object, as in an event: the value does not start the buffer.
    let mut json = b"{\"v\":\"".to_vec();
    let result = escape_into(&mut json, value, case);
    match std::str::from_utf8(value) {
        Ok(text) => {
            assert_eq!(result, Ok(()), "UTF-8 refused");
            json.extend_from_slice(b"\"}");
            let event = sipbeat_testkit::json::parse_event(&json)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json)));
            let expected = match case {
                Case::AsIs => text.to_string(),
                Case::Lower => text.to_ascii_lowercase(),
                Case::Upper => text.to_ascii_uppercase(),
            };
            assert_eq!(event["v"].as_str(), Some(expected.as_str()));
        }
        Err(_) => assert_eq!(result, Err(NotUtf8)),
    }
});
