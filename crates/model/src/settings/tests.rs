//! Unit tests of org settings: parsing, validation and the secrets placeholder.
use super::*;
use serde_json::json;

fn settings(v: serde_json::Value) -> Result<OrgSettings, ModelError> {
    let s: OrgSettings =
        serde_json::from_value(v).map_err(|e| ModelError::field("", e.to_string()))?;
    s.validate().map(|_| s)
}

#[test]
fn defaults_and_selection() {
    let s = settings(json!({"url": "https://siem.example.com/services/collector/event"})).unwrap();
    assert!(s.enabled);
    assert_eq!(s.events, EventSelection::All);
    let s = settings(json!({
        "url": "https://siem.example.com/x",
        "events": ["FLOW_FAILED", "FLOW_CANCELED"],
        "flows": {"mode": "exclude", "flow_ids": ["f2"]}
    }))
    .unwrap();
    assert!(s.events.includes(EventType::FlowFailed));
    assert!(!s.events.includes(EventType::FlowStart));
    assert!(!s.flows.includes("f2") && s.flows.includes("f1"));
    let back = serde_json::to_value(&s).unwrap();
    assert_eq!(back["events"], json!(["FLOW_FAILED", "FLOW_CANCELED"]));
    assert_eq!(
        serde_json::to_value(EventSelection::All).unwrap(),
        json!("all")
    );
}

#[test]
fn lists_may_name_new_and_unknown_types() {
    let s = settings(json!({
        "url": "https://siem.example.com/x",
        "events": ["FLOW_PAUSED", "FLOW_RESUMED", "FLOW_FAILED"]
    }))
    .unwrap();
    let resumed = EventType::parse("FLOW_RESUMED").unwrap();
    assert!(s.events.includes(resumed));
    assert!(s.events.includes(EventType::FlowPaused));
    assert!(!s.events.includes(EventType::FlowThirdPartyRateLimited));
    assert!(!s.events.includes(EventType::parse("FLOW_RETRIED").unwrap()));
    assert!(EventSelection::All.includes(resumed));
    // Known types first, in their order, then unknown ones by name.
    assert_eq!(
        serde_json::to_value(&s).unwrap()["events"],
        json!(["FLOW_FAILED", "FLOW_PAUSED", "FLOW_RESUMED"])
    );
}

#[test]
fn settings_written_before_unknown_types_load_unchanged() {
    // A document as ELS stored it before: every field the API writes.
    let before = json!({
        "enabled": true,
        "url": "https://siem.example.com/services/collector/event",
        "endpoint": "hec",
        "events": ["FLOW_FAILED", "FLOW_CANCELED", "FLOW_THROTTLED"],
        "flows": {"mode": "include", "flow_ids": ["f1"]},
        "auth_headers": [{"name": "Authorization", "value": "Splunk t"}],
        "custom_headers": [],
        "custom_fields": [],
        "hec": serde_json::to_value(crate::hec::HecOptions::default()).unwrap(),
        "allow_http": false
    });
    let text = serde_json::to_vec(&before).unwrap();
    let s = OrgSettings::from_json(&text).unwrap();
    s.validate().unwrap();
    assert_eq!(serde_json::to_value(&s).unwrap(), before);
    let all = json!({"url": "https://siem.example.com/x", "events": "ALL"});
    let s = OrgSettings::from_json(all.to_string().as_bytes()).unwrap();
    assert_eq!(s.events, EventSelection::All);
}

#[test]
fn field_named_errors() {
    let cases = [
        (json!({"url": "ftp://x/y"}), "url"),
        (json!({"url": "http://x/y"}), "url"),
        (json!({"url": "https://:443/x"}), "url"),
        (json!({"url": "https://x", "events": []}), "events"),
        (
            json!({"url": "https://x", "flows": {"mode": "include"}}),
            "flows.flow_ids",
        ),
        (
            json!({"url": "https://x", "body_template": "{\"a\":1}"}),
            "body_template",
        ),
        (
            json!({"url": "https://x", "auth_headers": [{"name": "Bad Name", "value": "v"}]}),
            "auth_headers[0].name",
        ),
        (
            json!({"url": "https://x", "custom_headers": [{"name": "X-A", "value": "a\r\nb"}]}),
            "custom_headers[0].value",
        ),
        (
            json!({"url": "https://x", "custom_headers": [{"name": "Host", "value": "a"}]}),
            "custom_headers[0].name",
        ),
        (
            json!({"url": "https://x", "max_events": {"rate": 0, "per": "second"}}),
            "max_events.rate",
        ),
    ];
    for (v, field) in cases {
        let err = settings(v.clone()).unwrap_err();
        assert_eq!(err.field_name(), Some(field), "{v} -> {err}");
    }
}

#[test]
fn custom_fields_cannot_shadow_ids_or_the_email() {
    for key in [
        "event_id",
        "user_email",
        "org_id",
        "user_id",
        "User_Email",
        " org_id ",
    ] {
        let v = json!({"url": "https://x", "custom_fields": [
            {"key": "okta_org", "value": "${org_id}"},
            {"key": "env", "value": "prod"},
            {"key": key, "value": "${user_id}"},
        ]});
        let err = settings(v).unwrap_err();
        assert_eq!(
            err.field_name(),
            Some("custom_fields[2].key"),
            "{key}: {err}"
        );
        assert!(err.to_string().contains("reserved"), "{err}");
    }
    let ok = json!({"url": "https://x", "custom_fields": [
        {"key": "okta_org", "value": "${org_id}"},
        {"key": "okta_user", "value": "${user_id}"},
        {"key": "flow_id", "value": "x"},
    ]});
    settings(ok).unwrap();
}

#[test]
fn from_json_names_fields_and_never_echoes_secrets() {
    let cases = [
        (r#"{"url": "https://x", "colour": 1}"#, Some("colour")),
        (r#"{"enabled": true}"#, Some("url")),
        (
            r#"{"url": "https://x", "flows": {"mode": "sometimes"}}"#,
            Some("flows.mode"),
        ),
        (
            r#"{"url": "https://x", "flows": {"mode": "all", "extra": 1}}"#,
            Some("flows.extra"),
        ),
        (
            r#"{"url": "https://x", "auth_headers": [{"name": "A"}]}"#,
            Some("auth_headers[0].value"),
        ),
        (
            r#"{"url": "https://x", "events": ["flow_nope"]}"#,
            Some("events"),
        ),
        (
            r#"{"url": "https://x", "events": ["FLOW NOPE"]}"#,
            Some("events"),
        ),
        (r#"{"url": "https://x", "events": [""]}"#, Some("events")),
        (r#"{"url": "https://x", "events": "some"}"#, Some("events")),
        (r#"{"url": "https://x""#, None),
        (r#"{"url": "https://x"} trailing"#, None),
        ("[]", None),
    ];
    for (text, field) in cases {
        let err = OrgSettings::from_json(text.as_bytes()).unwrap_err();
        assert_eq!(err.field_name(), field, "{text} -> {err}");
    }
    let err =
        OrgSettings::from_json(br#"{"url": "https://x", "events": ["FLOW_FAILED", "flow nope"]}"#)
            .unwrap_err();
    assert!(
        err.to_string()
            .contains("events[1]: `flow nope` is not an event type"),
        "{err}"
    );
    let err = OrgSettings::from_json(
        br#"{"url": "https://x", "auth_headers": [{"name": "A", "value": ["CANARY-7f3a"]}]}"#,
    )
    .unwrap_err();
    assert_eq!(err.field_name(), Some("auth_headers[0].value"));
    assert!(!err.to_string().contains("CANARY"), "{err}");
    let ok = OrgSettings::from_json(br#"{"url": "https://x"}"#).unwrap();
    assert_eq!(ok.url, "https://x");
}

#[test]
fn placeholder_keeps_the_stored_secret() {
    let stored = OrgSettings::hec("https://x/y", "s3cret");
    let mut next = stored.redacted();
    next.custom_headers.push(Header {
        name: "X-Env".into(),
        value: "prod".into(),
    });
    next.auth_headers[0].name = "authorization".into();
    next.keep_stored_secrets(Some(&stored)).unwrap();
    assert_eq!(next.auth_headers[0].value.expose(), "Splunk s3cret");

    let mut fresh = stored.redacted();
    let err = fresh.keep_stored_secrets(None).unwrap_err();
    assert_eq!(err.field_name(), Some("auth_headers[0].value"));
    let mut renamed = stored.redacted();
    renamed.auth_headers[0].name = "X-Other".into();
    assert!(renamed.keep_stored_secrets(Some(&stored)).is_err());
    // A real value is taken as is.
    let mut changed = OrgSettings::hec("https://x/y", "new");
    changed.keep_stored_secrets(Some(&stored)).unwrap();
    assert_eq!(changed.auth_headers[0].value.expose(), "Splunk new");
}

#[test]
fn placeholder_keeps_a_secret_only_for_the_same_destination() {
    let mut stored = OrgSettings::hec("https://siem.example/services/collector", "s3cret");
    stored.auth_headers.push(Header {
        name: "X-Key".into(),
        value: Secret::new("k3y"),
    });
    // Same scheme, host and port: the path, the host's case and an explicit default port
    // may change.
    for url in [
        "https://siem.example/other/path?q=1",
        "https://SIEM.example:443/services/collector",
    ] {
        let mut next = stored.redacted();
        next.url = url.into();
        next.keep_stored_secrets(Some(&stored)).unwrap();
        assert_eq!(next.auth_headers[1].value.expose(), "k3y", "{url}");
    }
    for (url, from_to) in [
        (
            "http://siem.example/services/collector",
            "from https://siem.example:443 to http://siem.example:80",
        ),
        (
            "https://echo.example/services/collector",
            "from https://siem.example:443 to https://echo.example:443",
        ),
        (
            "https://siem.example:8443/services/collector",
            "to https://siem.example:8443",
        ),
        ("https://[::1]/x", "to https://[::1]:443"),
    ] {
        // Any kept header is refused, naming it; the message never holds the secret.
        let mut next = stored.redacted();
        next.url = url.into();
        next.auth_headers[0].value = Secret::new("Splunk typed-again");
        let err = next.keep_stored_secrets(Some(&stored)).unwrap_err();
        assert_eq!(err.field_name(), Some("auth_headers[1].value"), "{url}");
        let text = err.to_string();
        assert!(text.contains(from_to), "{url}: {text}");
        assert!(!text.contains("k3y") && !text.contains("s3cret"), "{text}");
        // Entering every secret again for the new destination is fine.
        next.auth_headers[1].value = Secret::new("new-k3y");
        next.keep_stored_secrets(Some(&stored)).unwrap();
        assert_eq!(next.auth_headers[1].value.expose(), "new-k3y");
    }
    // A new URL that does not parse is left to `validate`.
    let mut bad = stored.redacted();
    bad.url = "not a url".into();
    bad.keep_stored_secrets(Some(&stored)).unwrap();
    assert_eq!(bad.validate().unwrap_err().field_name(), Some("url"));
}

#[test]
fn credential_and_control_character_headers_are_refused_naming_the_field() {
    for name in ["Authorization", "cookie", "PROXY-AUTHORIZATION"] {
        let v = json!({"url": "https://x", "custom_headers": [
            {"name": "X-Env", "value": "prod"},
            {"name": name, "value": "Bearer CANARY"},
        ]});
        let err = settings(v).unwrap_err();
        assert_eq!(err.field_name(), Some("custom_headers[1].name"), "{name}");
        let text = err.to_string();
        assert!(text.contains("auth_headers"), "{text}");
        assert!(!text.contains("CANARY"), "{text}");
        // As an auth header it is what auth headers are for.
        let v = json!({"url": "https://x", "auth_headers": [{"name": name, "value": "v"}]});
        settings(v).unwrap();
    }
    for bad in [
        "a\u{1}b",
        "esc \u{1b}[31m",
        "del\u{7f}",
        "nel\u{85}",
        "a\rb",
        "nul\u{0}",
    ] {
        let v = json!({"url": "https://x", "custom_headers": [{"name": "X-A", "value": bad}]});
        let err = settings(v).unwrap_err();
        assert_eq!(err.field_name(), Some("custom_headers[0].value"), "{bad:?}");
        let v = json!({"url": "https://x", "auth_headers": [
            {"name": "X-Ok", "value": "fine"},
            {"name": "X-Key", "value": bad},
        ]});
        let err = settings(v).unwrap_err();
        assert_eq!(err.field_name(), Some("auth_headers[1].value"), "{bad:?}");
        assert!(!err.to_string().contains(bad), "{err}");
    }
    // HTTP allows a tab inside a value, and any non-control text.
    let v = json!({"url": "https://x", "custom_headers": [{"name": "X-A", "value": "a\tb é"}]});
    settings(v).unwrap();
}

#[test]
fn stored_credential_custom_headers_move_to_the_auth_headers() {
    let mut s = OrgSettings::hec("https://x/y", "t");
    for (name, value) in [("X-Env", "prod"), ("Cookie", "sid=CANARY"), ("x-b", "b")] {
        s.custom_headers.push(Header {
            name: name.into(),
            value: value.into(),
        });
    }
    assert!(s.validate().is_err());
    assert_eq!(s.move_credential_headers_to_auth(), vec!["Cookie"]);
    s.validate().unwrap();
    let names: Vec<&str> = s.custom_headers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["X-Env", "x-b"]);
    assert_eq!(s.auth_headers[1].name, "Cookie");
    assert_eq!(s.auth_headers[1].value.expose(), "sid=CANARY");
    assert!(!serde_json::to_string(&s.redacted())
        .unwrap()
        .contains("CANARY"));
    assert!(s.move_credential_headers_to_auth().is_empty());
}

#[test]
fn secrets_never_in_debug_or_redacted_view() {
    let s = OrgSettings::hec("https://x/services/collector/event", "CANARY-7f3a");
    assert!(!format!("{s:?}").contains("CANARY"));
    let shown = serde_json::to_string(&s.redacted()).unwrap();
    assert!(!shown.contains("CANARY"));
    assert!(shown.contains("Authorization"));
}
