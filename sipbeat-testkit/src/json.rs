//! A stricter JSON reader for sipbeat's output: `serde_json` keeps the last
//! of two equal keys, Elasticsearch rejects the whole document, so tests
//! and fuzz targets read events through [`parse_event`].

use std::collections::HashSet;
use std::fmt;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses one event: valid JSON, an object, no key twice in any object.
pub fn parse_event(bytes: &[u8]) -> Result<Value, String> {
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let value = Strict
        .deserialize(&mut reader)
        .and_then(|value| reader.end().map(|()| value))
        .map_err(|e| e.to_string())?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(format!("not an object: {value}"))
    }
}

/// Builds a [`Value`] like `serde_json` does, failing on a repeated key.
#[derive(Clone, Copy)]
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut seen = HashSet::new();
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!(
                    "key {key:?} twice in one object"
                )));
            }
            let value = map.next_value_seed(Strict)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_errors_at_any_depth() {
        assert!(parse_event(br#"{"a":1,"b":{"c":[1,{"d":2}]}}"#).is_ok());
        assert!(
            parse_event(br#"{"a":1,"a":2}"#)
                .unwrap_err()
                .contains("\"a\"")
        );
        assert!(parse_event(br#"{"a":{"b":1,"b":1}}"#).is_err());
        assert!(parse_event(br#"{"a":[{"b":1,"b":1}]}"#).is_err());
        // The same key in sibling objects is fine.
        assert!(parse_event(br#"{"a":{"k":1},"b":{"k":1}}"#).is_ok());
    }

    #[test]
    fn only_one_object_is_an_event() {
        assert!(parse_event(b"[1]").is_err());
        assert!(parse_event(br#"{"a":1} {"b":2}"#).is_err());
        assert!(parse_event(br#"{"a":"\u00e9"}"#).is_ok());
        assert!(parse_event(br#"{"a":1"#).is_err());
    }
}
