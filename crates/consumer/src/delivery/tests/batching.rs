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

#[tokio::test(start_paused = true)]
async fn a_quiet_stream_lingers_longer_and_a_full_batch_resets_it() {
    let knobs = EngineKnobs {
        batch_max_events: 100,
        linger: Duration::from_millis(50),
        linger_max: Duration::from_millis(400),
        ..knobs()
    };
    let mut h = Harness::new(hec(), knobs, FakeSiem::ok());
    let tx = h.worker([]);
    // One event at a time: each batch closes on its linger, nearly empty, so the next one
    // waits twice as long, up to the maximum.
    let mut waits = Vec::new();
    for n in 0..6 {
        let sent = tokio::time::Instant::now();
        tx.send(job(n)).await.unwrap();
        h.finished(1).await;
        waits.push(sent.elapsed().as_millis() as u64);
    }
    assert_eq!(waits, [50, 100, 200, 400, 400, 400]);
    // A full batch leaves at once and brings the linger back to 50 ms.
    for n in 6..106 {
        tx.send(job(n)).await.unwrap();
    }
    h.finished(100).await;
    let sent = tokio::time::Instant::now();
    tx.send(job(106)).await.unwrap();
    h.finished(1).await;
    assert_eq!(sent.elapsed().as_millis(), 50);
    let sizes: Vec<usize> = h.siem.bodies().iter().map(Vec::len).collect();
    assert_eq!(&sizes[6..], [100, 1]);
}

#[test]
fn a_stream_settles_where_its_batches_carry_a_handful_of_events() {
    use crate::delivery::worker::{Linger, QUIET_BATCH};
    let knobs = EngineKnobs {
        batch_max_events: 500,
        linger: Duration::from_millis(50),
        linger_max: Duration::from_millis(1000),
        ..knobs()
    };
    // A stream of `rate` events a second: a batch carries its first event plus what
    // arrives within the linger. Where does the linger settle, after enough batches?
    let settle = |rate: f64| {
        let mut linger = Linger::new(&knobs);
        for _ in 0..20 {
            let events = 1 + (rate * linger.now().as_secs_f64()) as usize;
            linger.after(events.min(500), events.min(500) * 420, &knobs);
        }
        linger.now().as_millis()
    };
    assert_eq!(settle(1.0), 1000, "a quiet org: about one request a second");
    assert_eq!(settle(10.0), 800);
    assert_eq!(settle(100.0), 100);
    // Busy orgs keep the configured linger: 12 and 38 events a batch.
    assert_eq!(settle(235.0), 50);
    assert_eq!(settle(740.0), 50);
    assert_eq!(settle(20_000.0), 50, "full batches");

    // Thresholds: fewer than QUIET_BATCH events doubles, 4 x QUIET_BATCH halves.
    let mut linger = Linger::new(&knobs);
    for _ in 0..4 {
        linger.after(1, 400, &knobs);
    }
    assert_eq!(linger.now(), Duration::from_millis(800));
    linger.after(QUIET_BATCH, 4000, &knobs);
    linger.after(4 * QUIET_BATCH - 1, 12_000, &knobs);
    assert_eq!(linger.now(), Duration::from_millis(800), "in between: kept");
    linger.after(4 * QUIET_BATCH, 12_000, &knobs);
    assert_eq!(linger.now(), Duration::from_millis(400));
    for _ in 0..5 {
        linger.after(4 * QUIET_BATCH, 12_000, &knobs);
    }
    assert_eq!(
        linger.now(),
        Duration::from_millis(50),
        "never below the configured linger"
    );
    // A full batch (by bytes too) resets it at once.
    for _ in 0..5 {
        linger.after(1, 400, &knobs);
    }
    linger.after(3, knobs.batch_max_bytes, &knobs);
    assert_eq!(linger.now(), Duration::from_millis(50));
    // Without a larger maximum the linger never moves.
    let fixed = EngineKnobs {
        linger_max: Duration::ZERO,
        ..knobs
    };
    linger.after(1, 400, &fixed);
    assert_eq!(linger.now(), Duration::from_millis(50));
}

/// The size of the future an async fn with three arguments returns.
fn future_size<A, B, C, F>(_f: fn(A, B, C) -> F) -> usize {
    std::mem::size_of::<F>()
}

#[test]
fn a_waiting_worker_stays_small() {
    // 10,000 orgs keep 10,000 workers: the delivery and ack-poll futures are boxed while
    // they run, so a worker waiting for events holds well under a kilobyte (1,976 bytes
    // before they were).
    let size = future_size(crate::delivery::worker::run);
    assert!(size <= 1024, "a worker's future is {size} bytes");
}

#[test]
fn a_job_is_small() {
    // A stream's queue holds jobs in blocks of 32: 40-byte jobs keep a block at 1.3 KB.
    assert!(
        std::mem::size_of::<Job>() <= 40,
        "{}",
        std::mem::size_of::<Job>()
    );
}
