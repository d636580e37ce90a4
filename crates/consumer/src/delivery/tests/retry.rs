//! The retry schedule as the worker runs it: transient answers are retried on the backoff
//! schedule, a permanent one is a single attempt, and running out of the retry window (when
//! it is no longer than the pause threshold) dead-letters.

use super::*;
use crate::state::Reason;

#[tokio::test(start_paused = true)]
async fn three_500s_then_200_is_four_attempts_at_0_100_300_700_ms() {
    let mut h = Harness::new(hec(), knobs(), FakeSiem::scripted(&[500, 500, 500, 200]));
    let _tx = h.worker([job(0)]);
    let done = h.finished(1).await;
    assert_eq!(offsets(&done), [0]);
    let requests = h.siem.requests();
    let first = requests[0].at_ms;
    let at: Vec<u64> = requests.iter().map(|r| r.at_ms - first).collect();
    assert_eq!(at, [0, 100, 300, 700]);
    assert!(requests.iter().all(|r| r.events == [0]));
    assert!(h.dead_letters().is_empty());
    let metrics = &h.services.metrics;
    assert_eq!((metrics.retries.get(), metrics.delivered.get()), (3, 1));
}

#[tokio::test(start_paused = true)]
async fn a_400_is_one_attempt_and_dead_lettered_rejected_a_403_one_attempt_and_held() {
    let mut h = Harness::new(http(), knobs(), FakeSiem::scripted(&[400]));
    let _tx = h.worker([job(0)]);
    let done = h.finished(1).await;
    assert_eq!(offsets(&done), [0]);
    assert_eq!(h.siem.bodies(), [vec![0]]);
    let dead = h.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, Reason::Rejected);
    assert_eq!((dead[0].attempts, dead[0].last_status), (1, Some(400)));
    let metrics = &h.services.metrics;
    assert_eq!((metrics.retries.get(), metrics.delivered.get()), (0, 0));

    // A 403 is about the stream's credentials: one attempt, then held (paused).
    let mut h = Harness::new(http(), knobs(), FakeSiem::scripted(&[403]));
    let _tx = h.worker([job(0), job(1)]);
    assert_eq!(h.held(2).await, [0, 1]);
    assert_eq!(h.siem.bodies(), [vec![0]]);
    assert!(h.dead_letters().is_empty());
}

#[tokio::test(start_paused = true)]
async fn transient_failures_past_max_elapsed_are_dead_lettered_retries_exhausted() {
    let mut knobs = knobs();
    knobs.retry.max_elapsed = Duration::from_secs(2);
    let mut h = Harness::new(http(), knobs, FakeSiem::new(|_, _| 503));
    let _tx = h.worker([job(0)]);
    h.finished(1).await;
    let attempts = h.siem.requests().len() as u32;
    assert!((3..10).contains(&attempts), "{attempts}");
    let dead = h.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, Reason::RetriesExhausted);
    assert_eq!(
        (dead[0].attempts, dead[0].last_status),
        (attempts, Some(503))
    );
}
