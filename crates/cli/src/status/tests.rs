//! Rendering and argument tests of `status`, `pause` and `resume` (no I/O).
use super::*;
use crate::cli::{Cli, Command};
use clap::Parser;
use std::collections::BTreeMap;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("test time")
        .with_timezone(&Utc)
}

const NOW: &str = "2026-12-01T12:00:00Z";

fn stream(org: &str, state: StreamState, since: &str) -> StreamStatus {
    StreamStatus {
        org: org.into(),
        stream: "default".into(),
        state,
        since: at(since),
        reason: None,
        last_success: None,
        held_events: 0,
        held_bytes: 0,
        delivered_last_hour: 0,
        failed_last_hour: 0,
    }
}

fn refused() -> StatusReason {
    StatusReason {
        status: Some(403),
        hec_code: Some(4),
        text: "Invalid token".into(),
    }
}

fn paused() -> StreamStatus {
    StreamStatus {
        reason: Some(refused()),
        last_success: Some(at("2026-12-01T11:40:00Z")),
        held_events: 500,
        held_bytes: 210_000,
        delivered_last_hour: 10,
        failed_last_hour: 501,
        ..stream("org-b", StreamState::Paused, "2026-12-01T11:48:30Z")
    }
}

fn parse(args: &[&str]) -> Result<Command, clap::Error> {
    Cli::try_parse_from(std::iter::once("elsctl").chain(args.iter().copied())).map(|c| c.command)
}

#[test]
fn unknown_state_is_a_usage_error_listing_every_state() {
    let err = parse(&["status", "--state", "stopped"]).expect_err("bad state");
    assert_eq!(err.exit_code(), 2);
    let text = err.to_string();
    assert!(text.contains("stopped"), "{text}");
    for state in StreamState::ALL {
        assert!(text.contains(state.as_str()), "{text}");
    }
    match parse(&["status", "--state", "paused_by_user"]) {
        Ok(Command::Status(args)) => {
            assert_eq!(args.state, Some(StreamState::PausedByUser));
            assert_eq!(args.org, None);
        }
        other => panic!("not status: {other:?}"),
    }
}

#[test]
fn org_and_state_do_not_mix_and_pause_needs_an_org() {
    let err = parse(&["status", "--org", "o", "--state", "active"]).expect_err("conflict");
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("cannot be used with"), "{err}");
    for args in [&["pause"][..], &["resume"], &["pause", "--org", ""]] {
        assert_eq!(parse(args).expect_err("usage").exit_code(), 2, "{args:?}");
    }
    for args in [&["resume", "--org", "org-1"][..], &["resume", "org-1"]] {
        match parse(args) {
            Ok(Command::Resume(target)) => {
                assert_eq!((target.org(), target.stream.as_deref()), ("org-1", None));
            }
            other => panic!("not resume: {other:?}"),
        }
    }
    match parse(&["pause", "org-1", "--stream", "lake"]) {
        Ok(Command::Pause(target)) => {
            assert_eq!(
                (target.org(), target.stream.as_deref()),
                ("org-1", Some("lake"))
            );
        }
        other => panic!("not pause: {other:?}"),
    }
}

#[test]
fn reasons_name_status_hec_code_and_text() {
    assert_eq!(
        reason_text(Some(&refused())),
        "403, HEC code 4: Invalid token"
    );
    let network = StatusReason {
        status: None,
        hec_code: None,
        text: "connection refused".into(),
    };
    assert_eq!(reason_text(Some(&network)), "connection refused");
    let bare = StatusReason {
        status: Some(503),
        hec_code: None,
        text: String::new(),
    };
    assert_eq!(reason_text(Some(&bare)), "503");
    assert_eq!(reason_text(None), "-");
    let hostile = StatusReason {
        status: None,
        hec_code: None,
        text: "a\n\u{1b}[2Jb".into(),
    };
    assert_eq!(reason_text(Some(&hostile)), "a \\u{1b}[2Jb");
}

#[test]
fn ages_are_coarse() {
    let now = at(NOW);
    assert_eq!(age(at("2026-12-01T11:59:15Z"), now), "45s");
    assert_eq!(age(at("2026-12-01T11:48:00Z"), now), "12m");
    assert_eq!(age(at("2026-12-01T08:55:00Z"), now), "3h 5m");
    assert_eq!(age(at("2026-11-29T08:00:00Z"), now), "2d 4h");
    // A clock behind the server's is not a negative age.
    assert_eq!(age(at("2026-12-01T12:00:05Z"), now), "0s");
}

#[test]
fn list_table_has_one_row_per_stream_and_counts_by_state() {
    let mut active = stream("org-a", StreamState::Active, "2026-12-01T09:00:00Z");
    active.delivered_last_hour = 1200;
    active.last_success = Some(at("2026-12-01T11:59:59Z"));
    let list = StatusList {
        items: vec![active, paused()],
        matched: 2,
        by_state: BTreeMap::from([
            ("active".to_string(), 1),
            ("paused".to_string(), 1),
            ("failing".to_string(), 0),
        ]),
        next: None,
    };
    assert_eq!(
        render_list(&list, None, at(NOW)),
        "ORG    STREAM   STATE   SINCE                 FOR    HELD  DELIVERED_1H  FAILED_1H  REASON\n\
         org-a  default  active  2026-12-01T09:00:00Z  3h 0m  0     1200          0          -\n\
         org-b  default  paused  2026-12-01T11:48:30Z  11m    500   10            501        403, HEC code 4: Invalid token\n\
         2 streams (all orgs: active: 1, paused: 1)\n"
    );
}

#[test]
fn a_filtered_empty_list_says_so() {
    let list = StatusList {
        items: vec![],
        matched: 0,
        by_state: BTreeMap::from([("active".to_string(), 3)]),
        next: None,
    };
    assert_eq!(
        render_list(&list, Some(StreamState::Failing), at(NOW)),
        "0 streams failing (all orgs: active: 3)\n"
    );
}

#[test]
fn long_reasons_are_cut_in_the_table() {
    let mut s = paused();
    s.reason = Some(StatusReason {
        status: Some(400),
        hec_code: None,
        text: "x".repeat(500),
    });
    let list = StatusList {
        items: vec![s],
        matched: 1,
        ..StatusList::default()
    };
    let text = render_list(&list, None, at(NOW));
    let row = text.lines().nth(1).expect("row");
    assert!(row.ends_with('…'), "{row}");
    assert!(row.chars().count() < 200, "{row}");
}

#[test]
fn detail_shows_every_fact_a_hint_and_the_notices() {
    let notices = NoticeList {
        items: vec![
            StreamNotice {
                org: "org-b".into(),
                stream: "default".into(),
                from: StreamState::Active,
                to: StreamState::Paused,
                reason: Some(refused()),
                at: at("2026-12-01T11:48:30Z"),
            },
            StreamNotice {
                org: "org-b".into(),
                stream: "default".into(),
                from: StreamState::Paused,
                to: StreamState::Probing,
                reason: None,
                at: at("2026-12-01T11:49:00Z"),
            },
        ],
    };
    assert_eq!(
        render_detail(&paused(), &notices, at(NOW)),
        "org:           org-b\n\
         stream:        default\n\
         state:         paused since 2026-12-01T11:48:30Z (11m ago)\n\
         reason:        403, HEC code 4: Invalid token\n\
         last success:  2026-12-01T11:40:00Z (20m ago)\n\
         held events:   500 (210000 bytes)\n\
         last hour:     10 delivered, 501 failed\n\
         hint: events are held and one probe goes out now and then; fix the stream's settings \
         (`elsctl settings set org-b`, which resumes it) or resume now with `elsctl resume --org org-b`\n\
         \n\
         recent state changes (oldest first):\n  \
           AT                    FROM    TO       REASON\n  \
           2026-12-01T11:48:30Z  active  paused   403, HEC code 4: Invalid token\n  \
           2026-12-01T11:49:00Z  paused  probing  -\n"
    );
}

#[test]
fn detail_of_an_active_stream_has_no_reason_or_hint() {
    let text = render_detail(
        &stream("org-a", StreamState::Active, "2026-12-01T11:59:00Z"),
        &NoticeList::default(),
        at(NOW),
    );
    assert!(!text.contains("reason:"), "{text}");
    assert!(!text.contains("hint:"), "{text}");
    assert!(
        text.contains("last success:  none seen by this instance\n"),
        "{text}"
    );
    assert!(
        text.ends_with("recent state changes (oldest first):\n  none\n"),
        "{text}"
    );
}

#[test]
fn pause_and_resume_say_what_the_stream_does_now() {
    let mut s = stream("org-c", StreamState::PausedByUser, "2026-12-01T11:59:50Z");
    s.held_events = 3;
    s.reason = Some(StatusReason {
        status: None,
        hec_code: None,
        text: "paused by user".into(),
    });
    assert_eq!(
        render_action(Action::Pause, &s, at(NOW)),
        "paused org-c: paused_by_user since 2026-12-01T11:59:50Z (10s ago), 3 held events\n\
         its events are held until `elsctl resume --org org-c`\n"
    );
    let active = stream("org-c", StreamState::Active, "2026-12-01T12:00:00Z");
    assert_eq!(
        render_action(Action::Resume, &active, at(NOW)),
        "resumed org-c: active since 2026-12-01T12:00:00Z (0s ago), 0 held events\n"
    );
    let mut probing = paused();
    probing.state = StreamState::Probing;
    assert!(render_action(Action::Resume, &probing, at(NOW)).ends_with(
        "still holding: 403, HEC code 4: Invalid token — see `elsctl status --org org-b`\n"
    ));
}

#[test]
fn a_stream_other_than_default_is_named_in_texts_and_hints() {
    let mut s = stream("org-c", StreamState::PausedByUser, "2026-12-01T11:59:50Z");
    s.stream = "lake".into();
    assert_eq!(
        render_action(Action::Pause, &s, at(NOW)),
        "paused org-c (stream lake): paused_by_user since 2026-12-01T11:59:50Z (10s ago), 0 held events\n\
         its events are held until `elsctl resume --org org-c --stream lake`\n"
    );
    let mut p = paused();
    p.stream = "lake".into();
    let text = render_detail(&p, &NoticeList::default(), at(NOW));
    assert!(text.contains("stream:        lake\n"), "{text}");
    assert!(
        text.contains("(`elsctl streams set org-b lake`, which resumes it) or resume now with `elsctl resume --org org-b --stream lake`"),
        "{text}"
    );
    assert_eq!(
        stream_route("org-c", "default", "pause"),
        ["v1", "orgs", "org-c", "pause"]
    );
    assert_eq!(
        stream_route("org-c", "lake", "status"),
        ["v1", "orgs", "org-c", "streams", "lake", "status"]
    );
}
