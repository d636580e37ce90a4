//! Permanent HEC answers as Splunk means them: a whole-request error (code 7) is one request
//! that pauses the stream and holds the batch, not a split; code 6 finishes the events before the named
//! one and re-sends only those after it; 413 halves down to single events, and one still too
//! large is dead-lettered `too_large`. Every request carries the org's data channel.

use super::*;
use crate::state::Reason;

fn knobs_of(batch_max_events: usize) -> EngineKnobs {
    EngineKnobs {
        batch_max_events,
        ..knobs()
    }
}

#[tokio::test(start_paused = true)]
async fn an_incorrect_index_is_one_request_and_pauses_the_stream_holding_the_batch() {
    let siem = FakeSiem::replying(|_, _| (400, r#"{"text":"Incorrect index","code":7}"#.into()));
    let mut h = Harness::new(hec(), knobs_of(500), siem);
    let _tx = h.worker((0..500).map(job));
    let mut held = h.held(500).await;
    held.sort_unstable();
    assert_eq!(
        held,
        (0..500).collect::<Vec<i64>>(),
        "each held exactly once"
    );
    assert_eq!(h.siem.requests().len(), 1, "split a whole-request error");
    assert!(h.dead_letters().is_empty());
    let reason = h.services.streams.status(ORG, false).reason.unwrap();
    assert_eq!(
        (reason.status, reason.hec_code, reason.text.as_str()),
        (Some(400), Some(7), "Incorrect index")
    );
    assert_eq!(h.services.metrics.delivered.get(), 0);
    assert!(h.finished_now().is_empty(), "finished a held event");
}

#[tokio::test(start_paused = true)]
async fn a_404_is_not_split_either() {
    let siem = FakeSiem::scripted(&[404]);
    let mut h = Harness::new(hec(), knobs(), siem);
    let _tx = h.worker((0..10).map(job));
    assert_eq!(h.held(10).await.len(), 10);
    assert_eq!(h.siem.requests().len(), 1);
    assert!(h.dead_letters().is_empty());
}

#[tokio::test(start_paused = true)]
async fn code_6_re_sends_only_the_events_after_the_bad_one() {
    // Event 40 is invalid wherever it sits; Splunk indexed the events before it.
    let siem = FakeSiem::replying(|_, events| match events.iter().position(|e| *e == 40) {
        Some(n) => (
            400,
            format!(r#"{{"text":"Invalid data format","code":6,"invalid-event-number":{n}}}"#),
        ),
        None => (200, r#"{"text":"Success","code":0}"#.into()),
    });
    let mut h = Harness::new(hec(), knobs_of(100), siem);
    let _tx = h.worker((0..100).map(job));
    let mut done = offsets(&h.finished(100).await);
    done.sort_unstable();
    assert_eq!(done, (0..100).collect::<Vec<i64>>());
    let bodies = h.siem.bodies();
    let want: Vec<Vec<u32>> = vec![(0..100).collect(), (41..100).collect()];
    assert_eq!(bodies, want, "0-39 re-sent, or 41-99 not");
    let dead = h.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].offset, dead[0].reason), (40, Reason::Rejected));
    assert!(dead[0].last_error.contains("Invalid data format"));
    assert_eq!(h.services.metrics.delivered.get(), 99);
    assert!(h.finished_now().is_empty(), "finished twice");
}

#[tokio::test(start_paused = true)]
async fn a_413_splits_down_and_a_lone_oversized_event_is_too_large() {
    // A fake limit: at most 2 events a request, and event 5 alone is over it.
    let siem = FakeSiem::new(|_, events| {
        if events.len() > 2 || events.contains(&5) {
            413
        } else {
            200
        }
    });
    let mut h = Harness::new(hec(), knobs(), siem);
    let _tx = h.worker((0..8).map(job));
    let mut done = offsets(&h.finished(8).await);
    done.sort_unstable();
    assert_eq!(done, (0..8).collect::<Vec<i64>>());
    let want: Vec<Vec<u32>> = vec![
        vec![0, 1, 2, 3, 4, 5, 6, 7],
        vec![0, 1, 2, 3],
        vec![0, 1],
        vec![2, 3],
        vec![4, 5, 6, 7],
        vec![4, 5],
        vec![4],
        vec![5],
        vec![6, 7],
    ];
    assert_eq!(h.siem.bodies(), want);
    let dead = h.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].offset, dead[0].reason), (5, Reason::TooLarge));
    assert_eq!(dead[0].last_status, Some(413));
    assert_eq!(h.services.metrics.delivered.get(), 7);
}

#[tokio::test(start_paused = true)]
async fn every_request_of_an_org_carries_the_same_channel() {
    // A 400 split and a retried 503: several requests, one channel.
    let siem = FakeSiem::new(|i, events| match i {
        0 => 503,
        _ if events.contains(&2) && events.len() > 1 => 400,
        _ => 200,
    });
    let mut h = Harness::new(hec(), knobs(), siem);
    let tx = h.worker((0..4).map(job));
    h.finished(4).await;
    tx.send(job(4)).await.unwrap();
    h.finished(1).await;
    let requests = h.siem.requests();
    assert!(requests.len() >= 5, "{requests:?}");
    let channel = requests[0].channel;
    assert!(!channel.is_nil());
    assert!(
        requests.iter().all(|r| r.channel == channel),
        "{requests:?}"
    );
}
