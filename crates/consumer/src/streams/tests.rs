use super::*;

fn states() -> StreamStates {
    StreamStates::new(HealthKnobs::default(), Metrics::new())
}

fn refused() -> StatusReason {
    StatusReason {
        status: Some(403),
        hec_code: Some(4),
        text: "Invalid token".into(),
    }
}

#[test]
fn configuration_errors_are_credentials_endpoint_index_channel_and_acks() {
    for (status, code) in [
        (Some(401), None),
        (Some(403), Some(4)),
        (Some(404), None),
        (Some(410), None),
        (Some(400), Some(7)),
        (Some(400), Some(10)),
        (Some(400), Some(14)),
    ] {
        assert!(is_configuration_error(status, code), "{status:?} {code:?}");
    }
    for (status, code) in [
        (Some(400), Some(6)),
        (Some(400), None),
        (Some(503), Some(9)),
        (None, None),
    ] {
        assert!(!is_configuration_error(status, code), "{status:?} {code:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn paused_streams_release_one_probe_per_interval_and_new_settings_resume() {
    let s = states();
    assert_eq!(
        s.release("org-1", 1),
        Release::All,
        "an unknown stream flows"
    );
    s.pause("org-1", 5, refused(), 1);
    assert!(s.holds("org-1"));
    assert_eq!(s.release("org-1", 1), Release::Nothing);
    tokio::time::sleep(s.knobs.probe_interval).await;
    assert_eq!(s.release("org-1", 1), Release::Probe);
    assert_eq!(s.state("org-1"), StreamState::Probing);
    assert_eq!(
        s.release("org-1", 1),
        Release::Nothing,
        "two probes at once"
    );
    // A probe that never comes back is sent again after the interval.
    tokio::time::sleep(s.knobs.probe_interval).await;
    assert_eq!(s.release("org-1", 1), Release::Probe);
    s.pause("org-1", 1, refused(), 1);
    assert_eq!(s.state("org-1"), StreamState::Paused);
    // Other settings: resumed at once, announced once.
    assert_eq!(s.release("org-1", 2), Release::All);
    assert_eq!(s.state("org-1"), StreamState::Active);
    let (_, why) = s.take_resumed("org-1").unwrap();
    assert_eq!(why.unwrap().status, Some(403));
    assert!(s.take_resumed("org-1").is_none());
    let moves: Vec<_> = s
        .notices("org-1", 10)
        .iter()
        .map(|n| (n.from, n.to))
        .collect();
    assert_eq!(
        moves,
        [
            (StreamState::Active, StreamState::Paused),
            (StreamState::Paused, StreamState::Active)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn past_the_retry_window_a_paused_stream_releases_everything_to_dead_letter() {
    let knobs = HealthKnobs {
        retry_window: Duration::from_secs(120),
        ..HealthKnobs::default()
    };
    let s = StreamStates::new(knobs, Metrics::new());
    s.failed("org-1", 1, refused());
    assert_eq!(s.state("org-1"), StreamState::Failing);
    s.pause("org-1", 1, refused(), 1);
    assert!(!s.window_expired("org-1"));
    tokio::time::sleep(Duration::from_secs(121)).await;
    assert!(s.window_expired("org-1"));
    assert_eq!(s.release("org-1", 1), Release::All);
}

#[tokio::test(start_paused = true)]
async fn user_pause_holds_without_probes_until_resumed() {
    let s = states();
    s.user_pause("org-1");
    assert_eq!(s.state("org-1"), StreamState::PausedByUser);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(s.release("org-1", 1), Release::Nothing);
    // A failure while paused by the user does not turn it into an ELS pause.
    s.pause("org-1", 1, refused(), 1);
    assert_eq!(s.state("org-1"), StreamState::PausedByUser);
    s.resume_now("org-1", "a test event was accepted");
    assert_eq!(
        s.state("org-1"),
        StreamState::PausedByUser,
        "a test event resumed it"
    );
    s.user_resume("org-1");
    assert_eq!(s.state("org-1"), StreamState::Active);
    assert_eq!(s.release("org-1", 1), Release::All);
}

#[test]
fn states_come_back_from_the_notices_topic() {
    let s = states();
    let at = Utc::now();
    let notice = |org: &str, from, to| StreamNotice {
        org: org.into(),
        stream: "default".into(),
        from,
        to,
        reason: Some(refused()),
        at,
    };
    s.restore(vec![
        notice("org-1", StreamState::Active, StreamState::Paused),
        notice("org-2", StreamState::Active, StreamState::PausedByUser),
        notice("org-3", StreamState::Active, StreamState::Failing),
        notice("org-4", StreamState::Active, StreamState::Paused),
        notice("org-4", StreamState::Paused, StreamState::Active),
    ]);
    assert_eq!(s.state("org-1"), StreamState::Paused);
    assert_eq!(s.status("org-1", false).since, at);
    assert_eq!(
        s.release("org-1", 7),
        Release::Nothing,
        "restored paused, resumed at once"
    );
    assert_eq!(s.state("org-1"), StreamState::Paused);
    // With the settings adopted at start, a change made before the first release resumes.
    s.restore(vec![notice(
        "org-5",
        StreamState::Active,
        StreamState::Paused,
    )]);
    s.adopt_settings(|_| 3);
    assert_eq!(s.release("org-5", 4), Release::All);
    assert_eq!(s.state("org-5"), StreamState::Active);
    assert_eq!(s.state("org-2"), StreamState::PausedByUser);
    assert_eq!(s.state("org-3"), StreamState::Active, "failing is not held");
    assert_eq!(s.state("org-4"), StreamState::Active);
    assert_eq!(s.notices("org-4", 10).len(), 2);
}

#[test]
fn held_counts_and_the_hour_window() {
    let s = states();
    s.held.add("org-1", 3, 300);
    s.held.add("org-1", -1, -100);
    assert_eq!(s.status("org-1", false).held_events, 2);
    assert_eq!(s.status("org-1", false).held_bytes, 200);
    s.delivered("org-1", 7);
    s.failed("org-1", 2, refused());
    let status = s.status("org-1", false);
    assert_eq!(
        (status.delivered_last_hour, status.failed_last_hour),
        (7, 2)
    );
    assert!(status.last_success.is_some());
    assert_eq!(s.status("org-9", true).state, StreamState::Disabled);
}
