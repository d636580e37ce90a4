//! JSON as the engine sent it: values ELS passes through are kept as their text, and objects
//! that name a key twice are refused.
//!
//! - [`RawJson`]: a pass-through value (an unknown event field), kept as written. Parsing it
//!   into a [`serde_json::Value`] would turn an integer beyond `u64`/`i64` into a float and
//!   round decimals to `f64`; the workspace cannot use serde_json's `arbitrary_precision`
//!   instead, because with it numbers inside serde's buffered content (internally tagged
//!   records such as the consumer's versioned dead letters and settings) no longer
//!   deserialize.
//! - [`unique_keys`]: the duplicate-key check ingest runs over every body. With a repeated
//!   key, readers disagree about the event (serde keeps the last value, many validators and
//!   SIEMs the first), so ELS refuses it at the door, at every nesting level.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::{self, Write as _};

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// A JSON value kept as the text it was read from (see the module docs). Two are equal when
/// their texts are.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// The value's JSON text, exactly as read.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// A value's text as `serde_json` writes it.
    pub fn from_value(value: &Value) -> Self {
        match serde_json::value::to_raw_value(value) {
            Ok(raw) => Self(raw),
            // A `Value` always serialises; keep the type total anyway.
            Err(_) => Self(RawValue::NULL.to_owned()),
        }
    }

    /// The value parsed (numbers beyond `f64` precision are rounded, as `Value` does).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.get()).unwrap_or(Value::Null)
    }

    /// The string this value holds, when it is a JSON string.
    pub fn as_string(&self) -> Option<String> {
        if self.get().starts_with('"') {
            serde_json::from_str(self.get()).ok()
        } else {
            None
        }
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

/// Why [`unique_keys`] refused a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheckError {
    /// The path of the repeated key, such as `error.step_id` or `[3].org_id` (an array at the
    /// top), relative to the text.
    Duplicate(String),
    /// Not JSON (or nested deeper than serde_json's recursion limit of 128).
    Malformed(String),
}

/// Check that no object in the JSON `text` names a key twice, at any depth; the error names
/// the first repeated key by its path. Keys are compared after unescaping (`"a"` and
/// `"\u0061"` are the same key).
pub fn unique_keys(text: &[u8]) -> Result<(), KeyCheckError> {
    let mut state = Walk {
        path: String::new(),
        duplicate: None,
    };
    let mut de = serde_json::Deserializer::from_slice(text);
    let walked = (&mut state).deserialize(&mut de).and_then(|()| de.end());
    match (walked, state.duplicate) {
        (_, Some(path)) => Err(KeyCheckError::Duplicate(path)),
        (Err(e), None) => Err(KeyCheckError::Malformed(e.to_string())),
        (Ok(()), None) => Ok(()),
    }
}

/// Walks a value, keeping the current path; records the first duplicate found.
struct Walk {
    path: String,
    duplicate: Option<String>,
}

impl<'de> DeserializeSeed<'de> for &mut Walk {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &mut Walk {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let parent = self.path.len();
        for i in 0usize.. {
            self.path.truncate(parent);
            let _ = write!(self.path, "[{i}]");
            if seq.next_element_seed(&mut *self)?.is_none() {
                break;
            }
        }
        self.path.truncate(parent);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let parent = self.path.len();
        // A hash set, not a list: an object with many keys must not cost quadratic time.
        let mut seen: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(Key(key)) = map.next_key()? {
            self.path.truncate(parent);
            if parent > 0 {
                self.path.push('.');
            }
            self.path.push_str(&key);
            if !seen.insert(key) {
                self.duplicate = Some(self.path.clone());
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value_seed(&mut *self)?;
        }
        self.path.truncate(parent);
        Ok(())
    }
}

/// An object key, borrowed from the text when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dup(text: &str) -> Option<String> {
        match unique_keys(text.as_bytes()) {
            Err(KeyCheckError::Duplicate(path)) => Some(path),
            Err(KeyCheckError::Malformed(m)) => panic!("{text}: malformed: {m}"),
            Ok(()) => None,
        }
    }

    #[test]
    fn duplicates_are_named_by_path_at_every_level() {
        assert_eq!(dup(r#"{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}"#), None);
        assert_eq!(
            dup(r#"{"org_id":"A","x":1,"org_id":"B"}"#).as_deref(),
            Some("org_id")
        );
        assert_eq!(
            dup(r#"{"error":{"error_code":"E","error_code":"F"}}"#).as_deref(),
            Some("error.error_code")
        );
        assert_eq!(
            dup(r#"{"m":{"items":[1,{"k":1},{"k":1,"k":2}]}}"#).as_deref(),
            Some("m.items[2].k")
        );
        assert_eq!(dup(r#"[{"a":1},{"a":1,"a":1}]"#).as_deref(), Some("[1].a"));
        // Equal after unescaping.
        assert_eq!(dup(r#"{"a":1,"\u0061":2}"#).as_deref(), Some("a"));
        assert_eq!(dup(r#"[[{"":1,"":2}]]"#).as_deref(), Some("[0][0]."));
    }

    #[test]
    fn malformed_and_deep_texts_are_not_duplicates() {
        for text in ["{\"a\":", "[1] x", "", "{\"a\" 1}"] {
            assert!(
                matches!(
                    unique_keys(text.as_bytes()),
                    Err(KeyCheckError::Malformed(_))
                ),
                "{text}"
            );
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(matches!(
            unique_keys(deep.as_bytes()),
            Err(KeyCheckError::Malformed(_))
        ));
        // Big numbers are no reason to refuse.
        assert_eq!(
            dup(r#"{"n":123456789012345678901234567890,"f":1e300}"#),
            None
        );
    }

    #[test]
    fn many_keys_stay_linear() {
        let body: Vec<String> = (0..100_000).map(|i| format!("\"k{i}\":{i}")).collect();
        let text = format!("{{{}}}", body.join(","));
        let start = std::time::Instant::now();
        assert_eq!(dup(&text), None);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn raw_json_keeps_the_text() {
        let raw: RawJson = serde_json::from_str("123456789012345678901234567890").unwrap();
        assert_eq!(raw.get(), "123456789012345678901234567890");
        assert_eq!(
            serde_json::to_string(&raw).unwrap(),
            "123456789012345678901234567890"
        );
        let s = RawJson::from_value(&serde_json::json!("a\"b"));
        assert_eq!(s.as_string().as_deref(), Some("a\"b"));
        assert_eq!(RawJson::from_value(&serde_json::json!(1)).as_string(), None);
        assert_eq!(s.to_value(), serde_json::json!("a\"b"));
    }
}
