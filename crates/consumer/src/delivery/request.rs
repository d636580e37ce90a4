//! Request bodies for an org's SIEM: one envelope per event for HEC batches, or one event in
//! the org's body template for generic endpoints. The outbound event (hashed email, custom
//! fields) is written straight into the body, with no intermediate JSON value.

use els_model::hec::write_envelope;
use els_model::privacy::write_outbound;
use els_model::topic::TopicEvent;

use crate::settings::OrgRuntime;

/// Write the value sent for `event` under `runtime`'s settings: the outbound event (hashed
/// email, custom fields; see [`write_outbound`]) inside the org's body template, straight
/// into `out`.
pub fn write_event(out: &mut Vec<u8>, event: &TopicEvent, runtime: &OrgRuntime) {
    let write = |o: &mut Vec<u8>| write_outbound(o, event, &runtime.settings.custom_fields);
    match &runtime.template {
        Some(t) => t.write(out, write),
        None => write(out),
    }
}

/// The body of a one-event request to a generic endpoint.
pub fn event_body(event: &TopicEvent, runtime: &OrgRuntime) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    write_event(&mut out, event, runtime);
    out
}

/// Room for one HEC envelope beyond the event's own bytes.
const ENVELOPE_BYTES: usize = 320;

/// The HEC body for a batch: one envelope per event. The buffer is sized from the events'
/// text, so it is allocated once.
pub fn hec_body<'a>(
    events: impl Iterator<Item = &'a TopicEvent> + Clone,
    runtime: &OrgRuntime,
) -> Vec<u8> {
    let capacity = events.clone().map(|e| e.len() + ENVELOPE_BYTES).sum();
    let mut out = Vec::with_capacity(capacity);
    for event in events {
        write_envelope(&mut out, event, &runtime.settings.hec, |o| {
            write_event(o, event, runtime)
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use els_model::settings::{CustomField, OrgSettings};

    fn event() -> TopicEvent {
        let event = els_model::ingest::parse_event(serde_json::json!({
            "event_type": "FLOW_COMPLETE", "execution_id": "0b6b1c9e-2f0a-4a49-8f51-7d1b7e3c9a10",
            "timestamp": "2026-11-25T01:02:03.456Z", "flow_id": "f1", "flow_name": "F",
            "org_id": "org-1", "org_name": "Acme", "org_hostname": "acme.example.com",
            "user_id": "u1", "user_email": "Bob@Example.com"
        }))
        .unwrap();
        TopicEvent::from_event(&event).unwrap()
    }

    #[test]
    fn ids_only_when_asked_and_template_applied() {
        let mut s = OrgSettings::hec("https://siem.example.com/services/collector/event", "t");
        let render = |s: &OrgSettings| -> serde_json::Value {
            serde_json::from_slice(&event_body(&event(), &OrgRuntime::new(s.clone()).unwrap()))
                .unwrap()
        };
        let plain = render(&s);
        assert!(plain.get("org_id").is_none() && plain.get("user_id").is_none());
        assert_eq!(
            plain["user_email"],
            els_model::privacy::hash_email("bob@example.com")
        );
        s.custom_fields = vec![CustomField {
            key: "okta_org".into(),
            value: "${org_id}".into(),
        }];
        s.body_template = Some(r#"{"wrapper":{"e":"${event}"},"v":1}"#.into());
        let templated = render(&s);
        assert_eq!(templated["v"], 1);
        assert_eq!(templated["wrapper"]["e"]["okta_org"], "org-1");
        let body = hec_body(
            [event(), event()].iter(),
            &OrgRuntime::new(OrgSettings::hec("https://x/y", "t")).unwrap(),
        );
        assert_eq!(body.iter().filter(|b| **b == b'\n').count(), 2);
        assert!(!String::from_utf8(body).unwrap().contains("Example.com"));
    }
}
