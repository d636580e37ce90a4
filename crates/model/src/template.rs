//! Custom event bodies: a JSON template with the string `"${event}"` exactly where the event
//! object goes. The template is parsed once and the event is substituted structurally (as a
//! JSON value at a path), never by pasting strings, so nothing inside an event (quotes,
//! `${event}`, newlines) can change the body's structure.

use serde_json::Value;

use crate::error::ModelError;

/// The placeholder, as a whole JSON string value.
pub const PLACEHOLDER: &str = "${event}";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A parsed body template.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyTemplate {
    root: Value,
    path: Vec<Step>,
}

impl BodyTemplate {
    /// Parse and check a template. `field` names the setting in errors.
    pub fn parse(text: &str, field: &str) -> Result<Self, ModelError> {
        let root: Value = serde_json::from_str(text)
            .map_err(|e| ModelError::field(field, format!("not valid JSON: {e}")))?;
        let mut found = Vec::new();
        find_placeholders(&root, &mut Vec::new(), &mut found);
        match found.len() {
            1 => Ok(Self {
                root,
                path: found.remove(0),
            }),
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

    /// The body with `event` in place of the placeholder.
    pub fn render(&self, event: Value) -> Value {
        let mut out = self.root.clone();
        let mut slot = &mut out;
        for step in &self.path {
            slot = match (step, slot) {
                (Step::Key(k), Value::Object(map)) => map.entry(k.clone()).or_insert(Value::Null),
                (Step::Index(i), Value::Array(items)) => &mut items[*i],
                // The path was taken from this very value when parsing.
                (_, other) => other,
            };
        }
        *slot = event;
        out
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

    #[test]
    fn substitutes_structurally() {
        let t = BodyTemplate::parse(r#"{"source":"els","data":["x","${event}"]}"#, "t").unwrap();
        let ev = json!({"msg": "\"},${event}{\""});
        assert_eq!(
            t.render(ev.clone()),
            json!({"source":"els","data":["x", ev]})
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
            let out = t.render(event.clone());
            let bytes = serde_json::to_vec(&out).unwrap();
            let reparsed: Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(&reparsed["event_slot"], &event);
            for (k, v) in obj.iter().filter(|(k, _)| k.as_str() != "event_slot") {
                prop_assert_eq!(&reparsed[k], v);
            }
        }
    }
}
