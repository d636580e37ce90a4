//! A batch closes at `batch_max_events`, at `batch_max_bytes`, or `linger` after its first
//! event, whichever comes first.

use std::time::Duration;

use super::*;

/// (events, milliseconds since start) of each request.
fn timeline(siem: &FakeSiem) -> Vec<(Vec<u32>, u64)> {
    siem.requests()
        .into_iter()
        .map(|r| (r.events, r.at_ms))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_batch_closes_at_max_events() {
    let knobs = EngineKnobs {
        batch_max_events: 3,
        linger: Duration::from_secs(1),
        ..knobs()
    };
    let mut h = Harness::new(hec(), knobs, FakeSiem::ok());
    let _tx = h.worker((0..7).map(job));
    let done = h.finished(7).await;
    assert_eq!(offsets(&done), [0, 1, 2, 3, 4, 5, 6]);
    // Full batches leave at once; the last one waits out the linger for more.
    assert_eq!(
        timeline(&h.siem),
        [(vec![0, 1, 2], 0), (vec![3, 4, 5], 0), (vec![6], 1000)]
    );
    assert_eq!(h.services.metrics.delivered.get(), 7);
}

#[tokio::test(start_paused = true)]
async fn a_batch_closes_at_max_bytes() {
    // Every test event has the same size: two of them reach the limit.
    let size = event(0).len();
    let knobs = EngineKnobs {
        batch_max_bytes: 2 * size,
        linger: Duration::from_secs(1),
        ..knobs()
    };
    let mut h = Harness::new(hec(), knobs, FakeSiem::ok());
    let _tx = h.worker((0..5).map(job));
    h.finished(5).await;
    assert_eq!(
        timeline(&h.siem),
        [(vec![0, 1], 0), (vec![2, 3], 0), (vec![4], 1000)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_closes_after_the_linger() {
    let knobs = EngineKnobs {
        linger: Duration::from_millis(50),
        ..knobs()
    };
    let mut h = Harness::new(hec(), knobs, FakeSiem::ok());
    let tx = h.worker([job(0)]);
    // Event 1 comes within event 0's linger and joins its batch; event 2 comes after the
    // batch left and starts the next one, which leaves 50 ms later.
    tokio::time::sleep(Duration::from_millis(30)).await;
    tx.send(job(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(40)).await;
    tx.send(job(2)).await.unwrap();
    h.finished(3).await;
    assert_eq!(timeline(&h.siem), [(vec![0, 1], 50), (vec![2], 120)]);
}
