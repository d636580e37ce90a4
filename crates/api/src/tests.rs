//! Every answer against a JSON literal of the wire format the consumer sends (and elsctl, the
//! console and the end-to-end tests read): parsed into the type it must equal the value
//! written here, and written back it must be that literal again, `null`s included. A renamed
//! field, a renamed reason, or an optional field made required or skipped breaks a test here.

use std::collections::BTreeMap;
use std::fmt::Debug;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::*;

/// `wire` parses into `expected`, and `expected` writes `wire`.
fn round_trip<T>(wire: Value, expected: T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let parsed: T = serde_json::from_value(wire.clone()).unwrap_or_else(|e| panic!("{wire}: {e}"));
    assert_eq!(parsed, expected, "{wire}");
    assert_eq!(serde_json::to_value(&expected).unwrap(), wire);
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn record_wire() -> Value {
    json!({
        "id": 2_199_023_255_564u64, "org_id": "org-1", "stream": "default",
        "event": {"event_id": "e-1", "event_type": "FLOW_FAILED"},
        "reason": "retries_exhausted", "attempts": 12, "last_status": null,
        "last_error": "connect timed out",
        "first_failed_at": "2024-05-01T10:00:00.123Z", "last_failed_at": "2024-05-01T10:05:00Z",
        "partition": 2, "offset": 12
    })
}

fn record() -> DeadLetterV1 {
    DeadLetterV1 {
        id: (2 << 40) | 12,
        org_id: "org-1".into(),
        stream: "default".into(),
        event: json!({"event_id": "e-1", "event_type": "FLOW_FAILED"}),
        reason: Reason::RetriesExhausted,
        attempts: 12,
        last_status: None,
        last_error: "connect timed out".into(),
        first_failed_at: at("2024-05-01T10:00:00.123Z"),
        last_failed_at: at("2024-05-01T10:05:00Z"),
        partition: 2,
        offset: 12,
    }
}

#[test]
fn reasons_are_snake_case_and_sort_by_name() {
    let all = serde_json::to_value(Reason::ALL).unwrap();
    assert_eq!(
        all,
        json!([
            "rejected",
            "retries_exhausted",
            "rate_limited",
            "invalid_event",
            "too_large",
            "quota_exceeded"
        ])
    );
    for reason in Reason::ALL {
        assert_eq!(
            json!(reason.as_str()),
            serde_json::to_value(reason).unwrap()
        );
        assert_eq!(Reason::parse(reason.as_str()), Some(reason));
    }
    assert_eq!(Reason::parse("timeout"), None);
    let by_reason = BTreeMap::from(Reason::ALL.map(|r| (r, 1)));
    assert_eq!(
        serde_json::to_string(&by_reason).unwrap(),
        r#"{"invalid_event":1,"quota_exceeded":1,"rate_limited":1,"rejected":1,"retries_exhausted":1,"too_large":1}"#
    );
}

#[test]
fn dead_letter_record() {
    round_trip(record_wire(), record());
    // Records of older versions may lack the id.
    let mut old = record_wire();
    old.as_object_mut().unwrap().remove("id");
    let parsed: DeadLetterV1 = serde_json::from_value(old).unwrap();
    assert_eq!(parsed.id, 0);
}

#[test]
fn invalid_events_keep_their_payload() {
    let r = DeadLetterV1::invalid_event(3, 9, br#"{"org_id": "o", "x": 1}"#, "bad".into());
    assert_eq!(
        (r.org_id.as_str(), r.reason, r.partition, r.offset),
        ("o", Reason::InvalidEvent, 3, 9)
    );
    let r = DeadLetterV1::invalid_event(0, 0, b"\xffnot json", "bad".into());
    assert_eq!(r.event, json!("\u{fffd}not json"));
}

#[test]
fn dead_letter_list() {
    let wire = json!({
        "total": 7, "matched": 1,
        "by_reason": {"retries_exhausted": 1},
        "items": [record_wire()]
    });
    round_trip(
        wire,
        DeadLetterList {
            total: 7,
            matched: 1,
            by_reason: BTreeMap::from([(Reason::RetriesExhausted, 1)]),
            items: vec![record()],
        },
    );
    round_trip(
        json!({"total": 0, "matched": 0, "by_reason": {}, "items": []}),
        DeadLetterList {
            total: 0,
            matched: 0,
            by_reason: BTreeMap::new(),
            items: Vec::new(),
        },
    );
}

#[test]
fn purge_and_replay_answers() {
    round_trip(
        json!({"purged": 3, "remaining": 0}),
        PurgeResult {
            purged: 3,
            remaining: 0,
        },
    );
    round_trip(
        json!({"matched": 2, "replayed": 2, "failed": 0, "last_error": null, "remaining": 3}),
        ReplayResult {
            matched: 2,
            replayed: 2,
            failed: 0,
            last_error: None,
            remaining: 3,
        },
    );
    round_trip(
        json!({"matched": 1, "replayed": 0, "failed": 1,
               "last_error": "Message production error: MessageTimedOut", "remaining": 1}),
        ReplayResult {
            matched: 1,
            replayed: 0,
            failed: 1,
            last_error: Some("Message production error: MessageTimedOut".into()),
            remaining: 1,
        },
    );
}

#[test]
fn filters_as_query_and_replay_body() {
    round_trip(json!({}), DeadLetterQuery::default());
    round_trip(
        json!({"org": "org-1", "stream": "lake", "reason": "rejected", "since": "2024-05-01T00:00:00+02:00",
               "until": "2024-05-02T00:00:00+00:00", "limit": 5, "rate": 50}),
        DeadLetterQuery {
            org: Some("org-1".into()),
            stream: Some("lake".into()),
            reason: Some("rejected".into()),
            since: Some("2024-05-01T00:00:00+02:00".into()),
            until: Some("2024-05-02T00:00:00+00:00".into()),
            limit: Some(5),
            rate: Some(50),
        },
    );
    let unknown = serde_json::from_value::<DeadLetterQuery>(json!({"colour": "red"}));
    assert!(unknown.unwrap_err().to_string().contains("colour"));
    round_trip(
        json!({"org": "org-a"}),
        OrgQuery {
            org: "org-a".into(),
        },
    );
}

#[test]
fn console_summary() {
    round_trip(
        json!({
            "org": "org-a", "count": 2,
            "by_reason": {"rejected": 1, "retries_exhausted": 1},
            "latest": {"reason": "rejected", "attempts": 3, "last_status": 503,
                       "last_error": "Invalid token", "last_failed_at": "2026-11-25T01:02:00Z"},
            "total": 3
        }),
        DeadLetterSummary {
            org: "org-a".into(),
            count: 2,
            by_reason: BTreeMap::from([(Reason::Rejected, 1), (Reason::RetriesExhausted, 1)]),
            latest: Some(LatestFailure {
                reason: Reason::Rejected,
                attempts: 3,
                last_status: Some(503),
                last_error: "Invalid token".into(),
                last_failed_at: at("2026-11-25T01:02:00Z"),
            }),
            total: 3,
        },
    );
    round_trip(
        json!({"org": "o", "count": 0, "by_reason": {}, "latest": null, "total": 0}),
        DeadLetterSummary {
            org: "o".into(),
            count: 0,
            by_reason: BTreeMap::new(),
            latest: None,
            total: 0,
        },
    );
}

#[test]
fn settings_answers() {
    round_trip(
        json!({"orgs": ["org-1", "org-2"]}),
        OrgList {
            orgs: vec!["org-1".into(), "org-2".into()],
        },
    );
    round_trip(
        json!({"deleted": false}),
        SettingsDeleted { deleted: false },
    );
    assert_eq!(REDACTED, "********");
}

#[test]
fn test_event_answers() {
    round_trip(json!({}), TestEventRequest {});
    assert!(serde_json::from_value::<TestEventRequest>(json!({"x": 1})).is_err());
    round_trip(
        json!({"status": 200, "headers": {"content-type": "application/json", "x-request-id": "r-1"},
               "body": "{\"text\":\"Success\",\"code\":0}", "latency_ms": 37, "error": null,
               "hec_code": 0, "hec_text": "Success"}),
        TestEventResult {
            status: Some(200),
            headers: BTreeMap::from([
                ("content-type".into(), "application/json".into()),
                ("x-request-id".into(), "r-1".into()),
            ]),
            body: r#"{"text":"Success","code":0}"#.into(),
            latency_ms: 37,
            error: None,
            hec_code: Some(0),
            hec_text: Some("Success".into()),
            hec_ack_id: None,
        },
    );
    round_trip(
        json!({"status": 200, "headers": {}, "body": r#"{"text":"Success","code":0,"ackId":4}"#,
               "latency_ms": 5, "error": null, "hec_code": 0, "hec_text": "Success",
               "hec_ack_id": 4}),
        TestEventResult {
            status: Some(200),
            body: r#"{"text":"Success","code":0,"ackId":4}"#.into(),
            latency_ms: 5,
            hec_code: Some(0),
            hec_text: Some("Success".into()),
            hec_ack_id: Some(4),
            ..TestEventResult::default()
        },
    );
    round_trip(
        json!({"status": null, "headers": {}, "body": "", "latency_ms": 3,
               "error": "refused: 127.0.0.1 is a loopback address (not in ssrf_allow)",
               "hec_code": null, "hec_text": null}),
        TestEventResult {
            status: None,
            latency_ms: 3,
            error: Some("refused: 127.0.0.1 is a loopback address (not in ssrf_allow)".into()),
            ..TestEventResult::default()
        },
    );
}

#[test]
fn probes() {
    round_trip(
        json!({"ready": false, "partitions": [0, 2], "store_ok": true}),
        Readiness {
            ready: false,
            partitions: vec![0, 2],
            store_ok: true,
        },
    );
    round_trip(
        json!({"live": false, "reason": "dead-letter store failing for 31 s; restart after fixing the disk"}),
        Liveness {
            live: false,
            reason: "dead-letter store failing for 31 s; restart after fixing the disk".into(),
        },
    );
}

#[test]
fn error_body() {
    round_trip(
        json!({"error": "Bad Request", "field": "auth_headers[0].value", "message": "must not be empty"}),
        ErrorBody {
            error: Some("Bad Request".into()),
            field: Some("auth_headers[0].value".into()),
            message: "must not be empty".into(),
            errors: Vec::new(),
        },
    );
    round_trip(
        json!({"error": "Service Unavailable", "field": null, "message": "retry shortly"}),
        ErrorBody {
            error: Some("Service Unavailable".into()),
            field: None,
            message: "retry shortly".into(),
            errors: Vec::new(),
        },
    );
    // Read leniently: clients tell this shape by its message or errors.
    let bare: ErrorBody = serde_json::from_value(json!({"message": "x"})).unwrap();
    assert_eq!((bare.error, bare.field), (None, None));
    let several: ErrorBody =
        serde_json::from_value(json!({"errors": [{"field": "url", "message": "https required"}]}))
            .unwrap();
    assert_eq!(
        several.errors,
        [FieldError {
            field: Some("url".into()),
            message: "https required".into()
        }]
    );
}

#[test]
fn roles_tokens_and_whoami() {
    for role in Role::ALL {
        assert_eq!(serde_json::to_value(role).unwrap(), json!(role.as_str()));
        assert_eq!(Role::parse(role.as_str()), Some(role));
    }
    assert_eq!(Role::parse("admin"), None);
    let info = TokenInfo {
        id: "tok_0011223344556677".into(),
        role: Role::OrgAdmin,
        orgs: vec!["org-1".into()],
        created_at: at("2026-12-01T10:00:00Z"),
        expires_at: at("2026-12-31T10:00:00Z"),
        revoked_at: None,
        created_by: "bootstrap".into(),
        description: String::new(),
    };
    let info_wire = json!({
        "id": "tok_0011223344556677", "role": "org_admin", "orgs": ["org-1"],
        "created_at": "2026-12-01T10:00:00Z", "expires_at": "2026-12-31T10:00:00Z",
        "revoked_at": null, "created_by": "bootstrap", "description": ""
    });
    round_trip(info_wire.clone(), info.clone());
    let created = CreatedToken {
        token: info.clone(),
        secret: format!("els_{}", "ab".repeat(32)),
    };
    round_trip(
        json!({"token": info_wire, "secret": created.secret.clone()}),
        created.clone(),
    );
    assert!(
        !format!("{created:?}").contains("abab"),
        "Debug hides the secret"
    );
    round_trip(
        json!({"role": "org_viewer", "orgs": ["a", "b"], "ttl_secs": 60, "description": "ci"}),
        CreateToken {
            role: Role::OrgViewer,
            orgs: vec!["a".into(), "b".into()],
            ttl_secs: 60,
            description: "ci".into(),
        },
    );
    assert!(serde_json::from_value::<CreateToken>(
        json!({"role": "org_viewer", "ttl_secs": 60, "secret": "x"})
    )
    .is_err());
    round_trip(
        json!({"token_id": "bootstrap", "role": "super_admin", "orgs": [], "expires_at": null, "can_write": true}),
        WhoAmI {
            token_id: "bootstrap".into(),
            role: Role::SuperAdmin,
            orgs: vec![],
            expires_at: None,
            can_write: true,
        },
    );
}

#[test]
fn audit_entries() {
    round_trip(
        json!({"entries": [{
            "at": "2026-12-01T10:00:00Z", "token_id": "tok_01", "action": "settings.put",
            "org": "org-1", "status": 200, "outcome": "ok", "target": null
        }]}),
        AuditList {
            entries: vec![AuditEntry {
                at: at("2026-12-01T10:00:00Z"),
                token_id: "tok_01".into(),
                action: "settings.put".into(),
                org: Some("org-1".into()),
                status: 200,
                outcome: "ok".into(),
                target: None,
            }],
        },
    );
}
