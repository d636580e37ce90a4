//! Unit tests and proptests of the topic reader.
use super::*;
use crate::event::tests::sample_json;
use crate::event::BASE_FIELDS;
use proptest::prelude::*;
use serde_json::{json, Value};

#[test]
fn field_index_matches_the_table() {
    for (i, (name, _)) in FIELDS.iter().enumerate() {
        assert_eq!(field_index(name), Some(i), "{name}");
    }
    assert_eq!(field_index("extra"), None);
    let names: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names[..BASE_FIELDS.len()], crate::event::BASE_FIELDS);
}

#[test]
fn typed_fields_and_members() {
    let text = serde_json::to_vec(&sample_json()).unwrap();
    let e = TopicEvent::parse(&text).unwrap();
    assert_eq!(e.org_id(), "org-1");
    assert_eq!(e.flow_id(), "flo1");
    assert_eq!(e.org_hostname(), "acme.example.com");
    assert_eq!(e.user_email(), "Alice@Example.com");
    assert_eq!(e.event_type, EventType::FlowFailed);
    assert_eq!(e.timestamp_ms, 1_795_568_523_456);
    assert_eq!(
        e.members().count(),
        sample_json().as_object().unwrap().len()
    );
    for m in e.members() {
        let (a, b) = m.span.unwrap();
        let member: Value = serde_json::from_str(&format!("{{{}}}", &e.json()[a..b])).unwrap();
        assert_eq!(member[m.key], sample_json()[m.key]);
    }
}

#[test]
fn escapes_in_keys_and_values() {
    let mut v = sample_json();
    v["org_id"] = "org-\"1\"".into();
    let text =
        serde_json::to_string(&v)
            .unwrap()
            .replacen("\"future_field\"", "\"fut\\u0075re\"", 1);
    let e = TopicEvent::parse(text.as_bytes()).unwrap();
    assert_eq!(e.org_id(), "org-\"1\"");
    let fut = e.members().find(|m| m.key == "future").unwrap();
    assert!(fut.span.is_none());
}

#[test]
fn refusals_name_the_problem() {
    let refuse = |v: Value| TopicEvent::parse(v.to_string().as_bytes()).unwrap_err().0;
    let mut v = sample_json();
    v.as_object_mut().unwrap().remove("flow_id");
    assert_eq!(refuse(v), "missing field `flow_id`");
    let mut v = sample_json();
    v["depth"] = "deep".into();
    assert!(refuse(v).starts_with("depth: invalid type"));
    assert!(TopicEvent::parse(b"[1]").is_err());
    assert!(TopicEvent::parse(b"{\"a\":1} x").is_err());
    assert!(TopicEvent::parse(&[0xff, b'{']).is_err());
    let text = sample_json()
        .to_string()
        .replacen("\"depth\":1", "\"depth\":1,\"depth\":2", 1);
    assert_eq!(
        TopicEvent::parse(text.as_bytes()).unwrap_err().0,
        "duplicate field `depth`"
    );
}

fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(7)),
        Just(json!(-1)),
        Just(json!(true)),
        Just(json!("text")),
        Just(json!("2026-11-25T01:02:03Z")),
        Just(json!("FLOW_START")),
        Just(json!("FLOW_RESUMED")),
        Just(json!("flow_start")),
        Just(json!({"pause_type": "wait_for", "resume_after_ms": 5})),
        Just(json!({"service": "slack", "retry_after_ms": 5})),
        Just(json!("5f0c6f7e-8a41-4d57-9a7d-1f0e2c3b4a59")),
        Just(json!({"error_code": "E", "error_message": "m"})),
        Just(json!({"limit_type": "x", "limit": 3})),
        Just(json!([1])),
    ]
}

proptest! {
    /// The topic reader and `ExecutionEvent`'s deserializer accept exactly the same events.
    #[test]
    fn accepts_what_execution_event_accepts(
        edits in prop::collection::vec(
            (prop::sample::select(FIELDS.iter().map(|f| f.0).collect::<Vec<_>>()),
             prop::option::of(field_value())),
            0..4,
        )
    ) {
        let mut v = sample_json();
        for (name, value) in edits {
            match value {
                Some(value) => { v[name] = value; }
                None => { v.as_object_mut().unwrap().remove(name); }
            }
        }
        let text = v.to_string();
        let typed = serde_json::from_str::<ExecutionEvent>(&text);
        let topic = TopicEvent::parse(text.as_bytes());
        prop_assert_eq!(typed.is_ok(), topic.is_ok(), "{} / {:?}", text, topic.err());
        if let (Ok(t), Ok(e)) = (typed, TopicEvent::parse(text.as_bytes())) {
            prop_assert_eq!(t.org_id.as_str(), e.org_id());
            prop_assert_eq!(t.flow_id.as_str(), e.flow_id());
            prop_assert_eq!(t.timestamp.timestamp_millis(), e.timestamp_ms);
            prop_assert_eq!(t.event_id, e.event_id);
        }
    }
}

#[test]
fn unknown_types_are_read_by_name_and_malformed_ones_refused() {
    let mut v = sample_json();
    v["event_type"] = "FLOW_RESUMED".into();
    let text = v.to_string();
    let e = TopicEvent::parse(text.as_bytes()).unwrap();
    assert_eq!(e.event_type.as_str(), "FLOW_RESUMED");
    assert!(!e.event_type.is_known());
    assert_eq!(e.json(), text);
    for t in ["FLOW_PAUSED", "FLOW_THIRD_PARTY_RATE_LIMITED"] {
        v["event_type"] = t.into();
        let e = TopicEvent::parse(v.to_string().as_bytes()).unwrap();
        assert!(e.event_type.is_known() && e.event_type.as_str() == t);
    }
    for bad in ["flow_exploded", "FLOW EXPLODED", ""] {
        v["event_type"] = bad.into();
        let err = TopicEvent::parse(v.to_string().as_bytes()).unwrap_err().0;
        assert!(err.starts_with("event_type: "), "{bad:?}: {err}");
    }
}

proptest! {
    /// The member index gives back every member, in order, with the key unescaped and the
    /// value and member text exactly as written, for compact and indented JSON, keys with
    /// and without escapes, and values long enough to need several digits an offset.
    #[test]
    fn members_come_back_from_the_index(
        extra in prop::collection::vec(
            ("[a-z\"\\\\\n\u{e9}]{0,10}", prop_oneof![
                "[ -~]{0,300}".prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                Just(json!({"nested": [1, 2, {"k": "v"}]})),
            ]),
            0..12,
        ),
        pretty in any::<bool>(),
    ) {
        let mut v = sample_json();
        for (key, value) in extra {
            v[format!("x_{key}")] = value;
        }
        let text = if pretty {
            serde_json::to_string_pretty(&v).unwrap()
        } else {
            v.to_string()
        };
        let e = TopicEvent::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(e.json(), text.as_str());
        prop_assert_eq!(e.len(), text.len());
        let object = v.as_object().unwrap();
        let members: Vec<_> = e.members().collect();
        prop_assert_eq!(members.len(), object.len());
        for (m, (key, value)) in members.iter().zip(object) {
            prop_assert_eq!(m.key, key.as_str());
            prop_assert_eq!(&serde_json::from_str::<Value>(m.value).unwrap(), value);
            match m.span {
                Some((a, b)) => {
                    let one: Value = serde_json::from_str(&format!("{{{}}}", &text[a..b])).unwrap();
                    prop_assert_eq!(&one[key.as_str()], value);
                }
                None => prop_assert!(serde_json::to_string(key).unwrap().contains('\\')),
            }
        }
    }
}

#[test]
fn one_allocation_holds_text_and_index() {
    let text = sample_json().to_string();
    let e = TopicEvent::parse(text.as_bytes()).unwrap();
    assert!(e.extra.is_none());
    let index = e.data.len() - text.len();
    assert!(index > 0);
    assert!(e.data.as_bytes()[text.len()..].is_ascii());
    // About 5 bytes a member for compact JSON (16 as a member list).
    assert!(index <= 6 * e.members().count(), "{index} bytes");
}
