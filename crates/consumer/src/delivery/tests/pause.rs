//! Stream health through the worker: a configuration error pauses the stream after one
//! request and hands the batch (and what is queued) back to be held, never dead-lettered; a
//! SIEM failing longer than the pause threshold pauses it too; a probe is one attempt, and
//! its success makes the stream active again.

use super::*;
use els_api::status::StreamState;

const INVALID_TOKEN: &str = r#"{"text":"Invalid token","code":4}"#;

#[tokio::test(start_paused = true)]
async fn a_wrong_token_pauses_after_one_request_and_holds_every_event() {
    let siem = FakeSiem::replying(|_, _| (403, INVALID_TOKEN.into()));
    let mut h = Harness::new(hec(), knobs(), siem);
    let _tx = h.worker((0..250).map(job));
    let mut held = h.held(250).await;
    held.sort_unstable();
    assert_eq!(held, (0..250).collect::<Vec<i64>>());
    assert_eq!(h.siem.requests().len(), 1, "more than the first request");
    assert!(
        h.dead_letters().is_empty(),
        "dead-lettered a paused stream's events"
    );
    assert!(h.finished_now().is_empty());
    let status = h.services.streams.status(ORG, false);
    assert_eq!(status.state, StreamState::Paused);
    let reason = status.reason.unwrap();
    assert_eq!((reason.status, reason.hec_code), (Some(403), Some(4)));
    assert_eq!(reason.text, "Invalid token");
    let notices = h.services.streams.notices(ORG, 10);
    assert_eq!(notices.len(), 1);
    assert_eq!(
        (notices[0].from, notices[0].to),
        (StreamState::Active, StreamState::Paused)
    );
    assert_eq!(
        h.services
            .metrics
            .streams
            .with_label_values(&["paused"])
            .get(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn failing_past_the_pause_threshold_pauses_within_the_retry_window() {
    let mut k = knobs();
    k.retry.max_elapsed = Duration::from_secs(24 * 3600);
    let mut h = Harness::new(hec(), k, FakeSiem::new(|_, _| 503));
    let _tx = h.worker((0..10).map(job));
    let started = tokio::time::Instant::now();
    assert_eq!(h.held(10).await.len(), 10);
    let waited = started.elapsed();
    // Retries stop when the next attempt would start past the 60 s threshold.
    assert!(
        waited >= Duration::from_secs(30) && waited <= Duration::from_secs(60),
        "paused after {waited:?}"
    );
    assert!(h.dead_letters().is_empty());
    assert_eq!(h.services.streams.state(ORG), StreamState::Paused);
    let notices = h.services.streams.notices(ORG, 10);
    let moves: Vec<_> = notices.iter().map(|n| (n.from, n.to)).collect();
    assert_eq!(
        moves,
        [
            (StreamState::Active, StreamState::Failing),
            (StreamState::Failing, StreamState::Paused)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_probe_is_one_attempt_and_its_success_resumes_the_stream() {
    // Refused until request 3, then accepted.
    let siem = FakeSiem::replying(|i, _| {
        if i < 3 {
            (403, INVALID_TOKEN.into())
        } else {
            (200, r#"{"text":"Success","code":0}"#.into())
        }
    });
    let mut h = Harness::new(hec(), knobs(), siem);
    let tx = h.worker((0..5).map(job));
    h.held(5).await;
    let streams = h.services.streams.clone();
    let settings = Arc::as_ptr(&h.services.settings.get(ORG).unwrap()) as usize;
    assert_eq!(
        streams.release(ORG, settings),
        crate::streams::Release::Nothing,
        "probed before the interval"
    );
    for probe in 1..=3 {
        tokio::time::sleep(streams.knobs.probe_interval).await;
        assert_eq!(
            streams.release(ORG, settings),
            crate::streams::Release::Probe
        );
        assert_eq!(streams.state(ORG), StreamState::Probing);
        tx.send(job(probe)).await.unwrap();
        if probe < 3 {
            assert_eq!(h.held(1).await, vec![i64::from(probe)]);
            assert_eq!(streams.state(ORG), StreamState::Paused, "probe {probe}");
        }
    }
    let done = h.finished(1).await;
    assert_eq!(offsets(&done), [3]);
    assert_eq!(streams.state(ORG), StreamState::Active);
    assert_eq!(h.siem.requests().len(), 4, "a probe was retried");
    assert_eq!(streams.release(ORG, settings), crate::streams::Release::All);
    let moves: Vec<_> = streams
        .notices(ORG, 10)
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
    assert!(streams.status(ORG, false).reason.is_none());
}

#[tokio::test(start_paused = true)]
async fn new_settings_resume_a_paused_stream_and_the_resume_is_announced_to_the_siem() {
    let siem = FakeSiem::replying(|i, _| {
        if i == 0 {
            (403, INVALID_TOKEN.into())
        } else {
            (200, r#"{"text":"Success","code":0}"#.into())
        }
    });
    let mut h = Harness::new(hec(), knobs(), siem);
    let tx = h.worker((0..3).map(job));
    h.held(3).await;
    let streams = h.services.streams.clone();
    h.services.settings.put(ORG, hec()).unwrap();
    let settings = Arc::as_ptr(&h.services.settings.get(ORG).unwrap()) as usize;
    assert_eq!(streams.release(ORG, settings), crate::streams::Release::All);
    assert_eq!(streams.state(ORG), StreamState::Active);
    for n in 0..3 {
        tx.send(job(n)).await.unwrap();
    }
    h.finished(3).await;
    let requests = h.siem.requests();
    // The refused batch, then the lifecycle event (no test event number), then the events.
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests[1].events.is_empty(), "no lifecycle event first");
    assert_eq!(requests[2].events, vec![0, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn past_the_retry_window_a_refused_stream_dead_letters_its_held_events() {
    let siem = FakeSiem::replying(|_, _| (403, INVALID_TOKEN.into()));
    let health = crate::streams::HealthKnobs {
        retry_window: Duration::from_secs(120),
        ..crate::streams::HealthKnobs::default()
    };
    let mut h = Harness::with_health(hec(), knobs(), siem, health);
    let tx = h.worker((0..3).map(job));
    h.held(3).await;
    let streams = h.services.streams.clone();
    let settings = Arc::as_ptr(&h.services.settings.get(ORG).unwrap()) as usize;
    tokio::time::sleep(Duration::from_secs(121)).await;
    assert_eq!(streams.release(ORG, settings), crate::streams::Release::All);
    for n in 0..3 {
        tx.send(job(n)).await.unwrap();
    }
    h.finished(3).await;
    let dead = h.dead_letters();
    assert_eq!(dead.len(), 3);
    assert!(dead
        .iter()
        .all(|d| d.reason == crate::state::Reason::RetriesExhausted));
}
