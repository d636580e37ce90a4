//! Custom event bodies: a JSON template with the string `"${event}"` exactly where the event
//! object goes. The template is parsed once and the event is substituted structurally (as a
//! JSON value at a path), never by pasting strings, so nothing inside an event (quotes,
//! `${event}`, newlines) can change the body's structure.
//!
//! For speed the parsed template is kept as the text before and after the placeholder's
//! value, cut from the template's own serialisation: a body is then `before`, the event
//! serialised as one JSON value, `after`; the event is written once, with no intermediate
//! tree.

use serde_json::Value;

use crate::error::ModelError;

/// The placeholder, as a whole JSON string value.
pub const PLACEHOLDER: &str = "${event}";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A parsed body template: the JSON text around the placeholder's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyTemplate {
    before: String,
    after: String,
}

impl BodyTemplate {
    /// Parse and check a template. `field` names the setting in errors.
    pub fn parse(text: &str, field: &str) -> Result<Self, ModelError> {
        let root: Value = serde_json::from_str(text)
            .map_err(|e| ModelError::field(field, format!("not valid JSON: {e}")))?;
        let mut found = Vec::new();
        find_placeholders(&root, &mut Vec::new(), &mut found);
        match found.len() {
            1 => Ok(Self::split(root, &found[0])),
            0 => Err(ModelError::field(
                field,
                format!("must contain the string \"{PLACEHOLDER}\" as a whole JSON value"),
            )),
            n => Err(ModelError::field(
                field,
                format!("must contain \"{PLACEHOLDER}\" exactly once, found {n}"),
            )),
        }
    }

    /// Cut the serialised template at the placeholder's value. The value is first replaced
    /// by a marker string that occurs nowhere in the template, so the cut is unambiguous.
    fn split(mut root: Value, path: &[Step]) -> Self {
        let original = root.to_string();
        let marker = (0u32..)
            .map(|n| format!("els-event-slot-{n}"))
            .find(|m| !original.contains(m.as_str()))
            .unwrap_or_default();
        let mut slot = &mut root;
        for step in path {
            slot = match (step, slot) {
                (Step::Key(k), Value::Object(map)) => map.entry(k.clone()).or_insert(Value::Null),
                (Step::Index(i), Value::Array(items)) => &mut items[*i],
                // The path was taken from this very value when parsing.
                (_, other) => other,
            };
        }
        *slot = Value::String(marker.clone());
        let text = root.to_string();
        let quoted = format!("\"{marker}\"");
        let at = text.find(&quoted).unwrap_or(text.len());
        Self {
            before: text[..at].to_string(),
            after: text[(at + quoted.len()).min(text.len())..].to_string(),
        }
    }

    /// Write the body with the JSON value written by `event` in place of the placeholder.
    pub fn write(&self, out: &mut Vec<u8>, event: impl FnOnce(&mut Vec<u8>)) {
        out.extend_from_slice(self.before.as_bytes());
        event(out);
        out.extend_from_slice(self.after.as_bytes());
    }
}

fn find_placeholders(value: &Value, path: &mut Vec<Step>, found: &mut Vec<Vec<Step>>) {
    match value {
        Value::String(s) if s == PLACEHOLDER => found.push(path.clone()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                find_placeholders(item, path, found);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                path.push(Step::Key(k.clone()));
                find_placeholders(v, path, found);
                path.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn render(t: &BodyTemplate, event: &Value) -> Value {
        let mut out = Vec::new();
        t.write(&mut out, |o| serde_json::to_writer(o, event).unwrap());
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn substitutes_structurally() {
        let t = BodyTemplate::parse(r#"{"source":"els","data":["x","${event}"]}"#, "t").unwrap();
        let ev = json!({"msg": "\"},${event}{\""});
        assert_eq!(render(&t, &ev), json!({"source":"els","data":["x", ev]}));
        // The marker must not collide with template text that looks like it.
        let t = BodyTemplate::parse(
            r#"{"els-event-slot-0":"els-event-slot-0","e":"${event}"}"#,
            "t",
        )
        .unwrap();
        assert_eq!(
            render(&t, &json!(1)),
            json!({"els-event-slot-0":"els-event-slot-0","e":1})
        );
    }

    #[test]
    fn rejects_bad_templates() {
        for bad in [
            "{",
            r#"{"a":"b"}"#,
            r#"{"a":"${event}","b":"${event}"}"#,
            r#"{"a":"prefix ${event}"}"#,
        ] {
            let err = BodyTemplate::parse(bad, "body_template").unwrap_err();
            assert_eq!(err.field_name(), Some("body_template"), "{bad}");
        }
        assert!(BodyTemplate::parse("\"${event}\"", "t").is_ok());
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".*", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn rendered_output_is_valid_json_of_the_template_shape(
            prefix in prop::collection::btree_map("[a-z]{1,6}", arb_json(), 0..4),
            event in arb_json(),
        ) {
            let mut obj: serde_json::Map<String, Value> = prefix.into_iter().collect();
            obj.insert("event_slot".into(), Value::String(PLACEHOLDER.into()));
            let text = serde_json::to_string(&Value::Object(obj.clone())).unwrap();
            // Only templates with exactly one placeholder are valid.
            let Ok(t) = BodyTemplate::parse(&text, "t") else { return Ok(()); };
            let reparsed = render(&t, &event);
            prop_assert_eq!(&reparsed["event_slot"], &event);
            for (k, v) in obj.iter().filter(|(k, _)| k.as_str() != "event_slot") {
                prop_assert_eq!(&reparsed[k], v);
            }
        }
    }
}
