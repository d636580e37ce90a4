//! HEC indexer acknowledgement through the worker: a batch answered `200` with an `ackId`
//! is finished only when the ack endpoint confirms it; one poll per interval carries every
//! pending id of the channel; an id never acked is re-sent after the timeout; code 14 and
//! `hec.ack: false` count the `200`s; the per-org cap holds new batches back.

use super::*;
use els_model::hec::AckMode;

fn with_ack(mode: AckMode) -> OrgSettings {
    let mut settings = hec();
    settings.hec.ack = mode;
    settings
}

/// A SIEM whose every request gets ack id = request index, and whose acks are all ready.
fn acking_siem() -> FakeSiem {
    FakeSiem::replying(|i, _| success_ack(i)).with_acks(|ids| ack_answer(ids, |_| true))
}

#[tokio::test(start_paused = true)]
async fn a_batch_finishes_only_when_its_ack_comes_and_one_poll_asks_for_all() {
    let mut h = Harness::new(hec(), knobs(), acking_siem());
    let _tx = h.worker((0..250).map(job));
    tokio::time::sleep(Duration::from_millis(9_900)).await;
    assert!(h.finished_now().is_empty(), "finished before the ack");
    assert_eq!(h.siem.requests().len(), 3);
    let m = h.services.metrics.clone();
    assert_eq!(m.ack_pending_events.get(), 250);
    assert_eq!(m.acks_pending.get(), 3);
    assert_eq!(m.delivered.get(), 0);

    let mut done = offsets(&h.finished(250).await);
    done.sort_unstable();
    assert_eq!(done, (0..250).collect::<Vec<i64>>());
    let polls = h.siem.polls();
    assert_eq!(polls.len(), 1, "{polls:?}");
    assert_eq!(polls[0].ids, vec![0, 1, 2]);
    assert_eq!(polls[0].at_ms, 10_000, "polled at the interval");
    assert_eq!(polls[0].channel, h.siem.requests()[0].channel);
    assert_eq!(m.delivered.get(), 250);
    assert_eq!((m.ack_pending_events.get(), m.acks_pending.get()), (0, 0));
    assert_eq!(m.ack_latency.get_sample_count(), 3);
    assert!((m.ack_latency.get_sample_sum() - 30.0).abs() < 0.1);
    assert_eq!(h.dead_letters().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_id_never_acked_is_sent_again_after_the_timeout_with_the_same_events() {
    let siem =
        FakeSiem::replying(|i, _| success_ack(i)).with_acks(|ids| ack_answer(ids, |id| id != 1));
    let mut h = Harness::new(hec(), knobs(), siem);
    let _tx = h.worker((0..250).map(job));
    h.finished(150).await;
    assert_eq!(
        h.siem.requests().len(),
        3,
        "nothing re-sent before the timeout"
    );
    let rest = h.finished(100).await;
    let requests = h.siem.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(
        requests[3].events, requests[1].events,
        "the same events again"
    );
    assert_eq!(requests[3].at_ms, 300_000, "re-sent at the 300 s timeout");
    assert_eq!(offsets(&rest), (100..200).collect::<Vec<i64>>());
    let m = &h.services.metrics;
    assert_eq!(m.ack_timeouts.get(), 1);
    assert_eq!(m.delivered.get(), 250);
    assert_eq!(m.ack_pending_events.get(), 0);
    assert!(h.finished_now().is_empty(), "finished twice");
}

#[tokio::test(start_paused = true)]
async fn code_14_from_the_ack_endpoint_counts_the_200s_and_turns_ack_off() {
    // The default fake answers polls with code 14 (ack disabled for the token).
    let siem = FakeSiem::replying(|i, _| success_ack(i));
    let mut h = Harness::new(hec(), knobs(), siem);
    let tx = h.worker((0..100).map(job));
    h.finished(100).await;
    assert_eq!(h.siem.polls().len(), 1);
    tx.send(job(100)).await.unwrap();
    h.finished(1).await;
    assert_eq!(h.siem.polls().len(), 1, "polled again after code 14");
    let m = &h.services.metrics;
    assert_eq!(m.ack_unconfirmed.get(), 100);
    assert_eq!(m.ack_polls.with_label_values(&["disabled"]).get(), 1);
    assert_eq!(m.delivered.get(), 101);
}

#[tokio::test(start_paused = true)]
async fn without_an_ack_id_or_with_ack_false_a_200_is_delivered_and_nothing_polled() {
    for (settings, siem) in [
        (hec(), FakeSiem::ok()),
        (with_ack(AckMode::Off), acking_siem()),
    ] {
        let mut h = Harness::new(settings, knobs(), siem);
        let _tx = h.worker((0..150).map(job));
        h.finished(150).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(h.siem.polls().is_empty());
        assert_eq!(h.services.metrics.ack_unconfirmed.get(), 0);
    }
    // `hec.ack: true` and no ackId: delivered, counted as unconfirmed.
    let mut h = Harness::new(with_ack(AckMode::On), knobs(), FakeSiem::ok());
    let _tx = h.worker((0..10).map(job));
    h.finished(10).await;
    assert!(h.siem.polls().is_empty());
    assert_eq!(h.services.metrics.ack_unconfirmed.get(), 10);
}

#[tokio::test(start_paused = true)]
async fn the_per_org_cap_holds_new_batches_until_acks_free_room() {
    let mut k = knobs();
    k.ack.max_pending_per_org = 150;
    let mut h = Harness::new(hec(), k, acking_siem());
    let _tx = h.worker((0..300).map(job));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(h.siem.requests().len(), 2, "a third batch past the cap");
    h.finished(300).await;
    let requests = h.siem.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[2].at_ms, 10_000, "sent once the first acks came");
}

#[tokio::test(start_paused = true)]
async fn a_closing_queue_asks_for_its_last_acks_at_once() {
    let mut h = Harness::new(hec(), knobs(), acking_siem());
    let tx = h.worker((0..100).map(job));
    drop(tx);
    h.finished(100).await;
    let polls = h.siem.polls();
    assert_eq!(polls.len(), 1);
    assert!(polls[0].at_ms <= 500, "waited for the interval: {polls:?}");
}
