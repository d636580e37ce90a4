//! Org limits (`max_events`): one governor limiter per org worker, rebuilt when the org's
//! limit changes; `delay` holds the excess back, `dead_letter` dead-letters it. The limiter
//! reads and waits on tokio's clock, so paused test time drives it too.

use std::num::NonZeroU32;

use els_model::settings::{LimitPolicy, Per, RateLimit};
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::retry::{Attempt, TokioClock, Verdict};
use super::worker::{dead_letter, Engine, Job};
use crate::metrics::OrgOutcome;
use crate::state::Reason;

/// Governor's clock is tokio's (in production the same as the system's monotonic clock).
impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> Self::Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// One org's direct (unkeyed) limiter on tokio's clock.
type OrgLimiter =
    RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<std::time::Instant>>;

/// The org's governor limiter, rebuilt when its settings change.
#[derive(Default)]
pub struct Limiter {
    current: Option<(RateLimit, OrgLimiter)>,
}

impl Limiter {
    /// Apply the org's limit to the front of `jobs`: returns the jobs admitted now and the
    /// rest. With `delay` it waits for at least one token (so progress is steady); with
    /// `dead_letter` the excess is dead-lettered at once. `None` on hard stop.
    pub async fn admit(
        &mut self,
        limit: Option<RateLimit>,
        jobs: Vec<Job>,
        engine: &Engine,
    ) -> Option<(Vec<Job>, Vec<Job>)> {
        let Some(limit) = limit else {
            self.current = None;
            return Some((jobs, Vec::new()));
        };
        if self.current.as_ref().is_none_or(|(l, _)| *l != limit) {
            self.current = Some((
                limit,
                RateLimiter::direct_with_clock(quota(limit), TokioClock),
            ));
        }
        let limiter = &self.current.as_ref()?.1;
        let mut admitted = Vec::with_capacity(jobs.len());
        let mut excess = Vec::new();
        let mut iter = jobs.into_iter();
        while let Some(job) = iter.next() {
            if limiter.check().is_ok() {
                admitted.push(job);
                continue;
            }
            let metrics = &engine.services.metrics;
            metrics.rate_limited.inc();
            metrics.org_event(&job.stream, OrgOutcome::RateLimited, 1);
            match limit.policy {
                LimitPolicy::DeadLetter => excess.push(job),
                LimitPolicy::Delay if admitted.is_empty() => {
                    tokio::select! {
                        _ = engine.hard_stop.cancelled() => return None,
                        _ = until_ready(limiter) => admitted.push(job),
                    }
                }
                LimitPolicy::Delay => {
                    // Send what we have; this job waits for the next token.
                    let mut rest = vec![job];
                    rest.extend(iter);
                    return Some((admitted, rest));
                }
            }
        }
        if !excess.is_empty() {
            let attempt = Attempt {
                verdict: Verdict::Permanent,
                status: None,
                detail: format!(
                    "over the org's max_events limit of {} per {:?}",
                    limit.rate, limit.per
                ),
            };
            Box::pin(dead_letter(
                engine,
                excess,
                Reason::RateLimited,
                0,
                &attempt,
            ))
            .await;
        }
        Some((admitted, Vec::new()))
    }
}

/// Wait for the limiter's next token with tokio's timer (governor's own `until_ready` sleeps
/// on a timer that paused tokio time does not move).
async fn until_ready(limiter: &OrgLimiter) {
    while let Err(not_until) = limiter.check() {
        tokio::time::sleep(not_until.wait_time_from(TokioClock.now())).await;
    }
}

fn quota(limit: RateLimit) -> Quota {
    let rate = NonZeroU32::new(limit.rate).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(limit.burst.unwrap_or(limit.rate)).unwrap_or(NonZeroU32::MIN);
    match limit.per {
        Per::Second => Quota::per_second(rate),
        Per::Minute => Quota::per_minute(rate),
    }
    .allow_burst(burst)
}
