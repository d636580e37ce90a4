//! Unit tests of the `dlq` commands against canned answers.
use super::*;
use clap::Parser;
use serde_json::json;

#[derive(Debug, Parser)]
struct Harness {
    #[command(subcommand)]
    command: DlqCommand,
}

fn parse(args: &[&str]) -> Result<DlqCommand, clap::Error> {
    Harness::try_parse_from(std::iter::once("dlq").chain(args.iter().copied())).map(|h| h.command)
}

fn filters(args: &[&str]) -> Filters {
    match parse(&[&["list"], args].concat()) {
        Ok(DlqCommand::List { filters }) => filters,
        other => panic!("not a list: {other:?}"),
    }
}

#[test]
fn unknown_reason_is_a_usage_error_listing_the_four() {
    let err = parse(&["list", "--reason", "timeout"]).expect_err("bad reason");
    assert_eq!(err.exit_code(), 2);
    let text = err.to_string();
    for reason in [
        "rejected",
        "retries_exhausted",
        "rate_limited",
        "invalid_event",
    ] {
        assert!(text.contains(reason), "{text}");
    }
    assert_eq!(
        filters(&["--reason", "retries_exhausted"]).reason,
        Some(Reason::RetriesExhausted)
    );
}

#[test]
fn times_must_be_rfc3339() {
    let err = parse(&["list", "--since", "yesterday"]).expect_err("bad time");
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("RFC 3339"), "{err}");
    assert!(parse(&["list", "--until", "2024-05-01 12:00"]).is_err());
    assert!(filters(&["--since", "2024-05-01T12:00:00+02:00"])
        .since
        .is_some());
}

#[test]
fn since_after_until_is_refused() {
    let f = filters(&[
        "--since",
        "2024-05-02T00:00:00Z",
        "--until",
        "2024-05-01T00:00:00Z",
    ]);
    let err = f.validate().expect_err("inverted range");
    assert_eq!(err.exit_code(), 2);
    let f = filters(&[
        "--since",
        "2024-05-01T00:00:00Z",
        "--until",
        "2024-05-01T00:00:00Z",
    ]);
    assert!(f.validate().is_ok());
}

#[test]
fn empty_org_and_zero_rate_are_usage_errors() {
    assert!(parse(&["list", "--org", ""]).is_err());
    assert!(parse(&["replay", "--org", "a", "--rate", "0"]).is_err());
    assert!(parse(&["show", "seven"]).is_err());
}

#[test]
fn query_and_body_carry_every_filter() {
    let f = filters(&[
        "--org",
        "org-1",
        "--reason",
        "rejected",
        "--since",
        "2024-05-01T00:00:00+02:00",
        "--limit",
        "5",
    ]);
    let query = f.request(None);
    assert_eq!(
        (
            query.org.as_deref(),
            query.reason.as_deref(),
            query.since.as_deref(),
            query.until.as_deref(),
            query.limit,
            query.rate,
        ),
        (
            Some("org-1"),
            Some("rejected"),
            Some("2024-05-01T00:00:00+02:00"),
            None,
            Some(5),
            None
        )
    );
    assert_eq!(
        serde_json::to_value(f.request(Some(50))).unwrap(),
        json!({"org": "org-1", "reason": "rejected", "since": "2024-05-01T00:00:00+02:00", "limit": 5, "rate": 50})
    );
    assert_eq!(
        serde_json::to_value(Filters::default().request(None)).unwrap(),
        json!({})
    );
}

#[test]
fn whole_store_needs_yes() {
    let err = require_scope(&Filters::default(), false, "replay").expect_err("no scope");
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("--yes"));
    assert!(require_scope(&Filters::default(), true, "replay").is_ok());
    assert!(require_scope(&filters(&["--limit", "3"]), false, "purge").is_ok());
}

#[test]
fn list_table_and_summary() {
    let list: DeadLetterList = serde_json::from_value(json!({
        "total": 7,
        "matched": 2,
        "by_reason": {"retries_exhausted": 1, "rejected": 1, "invalid_event": 0},
        "items": [
            {"id": 3, "org_id": "org-1", "event": {"event_id": "e-1", "event_type": "FLOW_FAILED"},
             "reason": "rejected", "attempts": 1, "last_status": 400,
             "last_error": format!("{{\"text\":\"Invalid data format\",\"code\":6}}\n{}", "y".repeat(100)),
             "first_failed_at": "2024-05-01T10:00:00.123Z", "last_failed_at": "2024-05-01T10:00:00.123456Z",
             "partition": 0, "offset": 12},
            {"id": 14, "org_id": "org-22", "event": "not an object",
             "reason": "retries_exhausted", "attempts": 12, "last_status": null,
             "last_error": "connect timed out", "first_failed_at": "2024-05-01T09:00:00Z",
             "last_failed_at": "2024-05-01T12:00:00+02:00",
             "partition": 1, "offset": 9}
        ]
    }))
    .expect("list");
    let text = render_list(&list);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("ID  ORG     REASON             STATUS  ATTEMPTS  EVENT_TYPE   EVENT_ID  LAST_FAILED_AT        ERROR"), "{text}");
    assert!(lines[1].starts_with("3   org-1   rejected           400     1         FLOW_FAILED  e-1       2024-05-01T10:00:00Z  {\"text\":\"Invalid data format\",\"code\":6} yyy"), "{text}");
    assert!(lines[1].ends_with('…'));
    let error_cell = lines[1]
        .split("2024-05-01T10:00:00Z  ")
        .nth(1)
        .unwrap_or("");
    assert_eq!(error_cell.chars().count(), ERROR_COLUMN_CHARS);
    assert!(lines[2].starts_with("14  org-22  retries_exhausted  -       12        -            -         2024-05-01T10:00:00Z  connect timed out"), "{text}");
    assert_eq!(
        lines[3],
        "2 matched of 7 dead letters (rejected: 1, retries_exhausted: 1, invalid_event: 0)"
    );
}

#[test]
fn empty_list_is_just_the_summary() {
    let list: DeadLetterList =
        serde_json::from_value(json!({"total": 0, "matched": 0, "by_reason": {}, "items": []}))
            .expect("list");
    assert_eq!(render_list(&list), "0 matched of 0 dead letters\n");
}

#[test]
fn replay_summary() {
    let ok = ReplayResult {
        matched: 3,
        replayed: 3,
        failed: 0,
        last_error: None,
        remaining: 0,
    };
    assert_eq!(
        render_replay(&ok),
        "replayed 3 of 3 (failed 0)\n0 dead letters remain\n"
    );
    let bad = ReplayResult {
        matched: 3,
        replayed: 1,
        failed: 2,
        last_error: Some("Message timed out".into()),
        remaining: 2,
    };
    assert_eq!(
        render_replay(&bad),
        "replayed 1 of 3 (failed 2)\nlast error: Message timed out\n2 dead letters remain\n"
    );
}
