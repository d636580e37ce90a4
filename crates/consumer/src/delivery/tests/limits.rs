//! The org's `max_events` limit: `delay` spreads the excess over time, `dead_letter`
//! dead-letters it with reason `rate_limited`.

use els_model::settings::{LimitPolicy, Per, RateLimit};

use super::*;
use crate::state::Reason;

fn limited(rate: u32, per: Per, burst: Option<u32>, policy: LimitPolicy) -> OrgSettings {
    OrgSettings {
        max_events: Some(RateLimit {
            rate,
            per,
            burst,
            policy,
        }),
        ..hec()
    }
}

#[tokio::test(start_paused = true)]
async fn delay_spreads_events_at_the_limited_rate() {
    // 10 per second, one at a time: an event every 100 ms.
    let settings = limited(10, Per::Second, Some(1), LimitPolicy::Delay);
    let mut h = Harness::new(settings, knobs(), FakeSiem::ok());
    let _tx = h.worker((0..5).map(job));
    let done = h.finished(5).await;
    assert_eq!(offsets(&done), [0, 1, 2, 3, 4]);
    let requests = h.siem.requests();
    let sent: Vec<(Vec<u32>, u64)> = requests.into_iter().map(|r| (r.events, r.at_ms)).collect();
    assert_eq!(
        sent,
        [
            (vec![0], 0),
            (vec![1], 100),
            (vec![2], 200),
            (vec![3], 300),
            (vec![4], 400)
        ]
    );
    assert!(h.dead_letters().is_empty());
    assert!(h.services.metrics.rate_limited.get() >= 4);
}

#[tokio::test(start_paused = true)]
async fn dead_letter_dead_letters_the_excess() {
    // Two per minute: of five events at once, two are sent and three dead-lettered.
    let settings = limited(2, Per::Minute, None, LimitPolicy::DeadLetter);
    let mut h = Harness::new(settings, knobs(), FakeSiem::ok());
    let _tx = h.worker((0..5).map(job));
    let mut done = offsets(&h.finished(5).await);
    done.sort_unstable();
    assert_eq!(done, [0, 1, 2, 3, 4]);
    assert_eq!(h.siem.bodies(), [vec![0, 1]]);
    let dead = h.dead_letters();
    let offsets: Vec<i64> = dead.iter().map(|d| d.offset).collect();
    assert_eq!(offsets, [2, 3, 4]);
    for d in &dead {
        assert_eq!(d.reason, Reason::RateLimited);
        assert_eq!((d.attempts, d.last_status), (0, None));
        assert_eq!(
            d.last_error,
            "over the org's max_events limit of 2 per Minute"
        );
        assert_eq!(d.org_id, ORG);
    }
    let metrics = &h.services.metrics;
    assert_eq!(metrics.rate_limited.get(), 3);
    assert_eq!(metrics.delivered.get(), 2);
}
