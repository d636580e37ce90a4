//! Org limits (`max_events`): one governor limiter per org worker, rebuilt when the org's
//! limit changes; `delay` holds the excess back, `dead_letter` dead-letters it.

use std::num::NonZeroU32;

use els_model::settings::{LimitPolicy, Per, RateLimit};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::retry::{Attempt, Verdict};
use super::worker::{dead_letter, Engine, Job};
use crate::metrics::OrgOutcome;
use crate::state::Reason;

/// The org's governor limiter, rebuilt when its settings change.
#[derive(Default)]
pub struct Limiter {
    current: Option<(RateLimit, DefaultDirectRateLimiter)>,
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
            self.current = Some((limit, RateLimiter::direct(quota(limit))));
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
            metrics.org_event(job.event.org_id(), OrgOutcome::RateLimited, 1);
            match limit.policy {
                LimitPolicy::DeadLetter => excess.push(job),
                LimitPolicy::Delay if admitted.is_empty() => {
                    tokio::select! {
                        _ = engine.hard_stop.cancelled() => return None,
                        _ = limiter.until_ready() => admitted.push(job),
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

fn quota(limit: RateLimit) -> Quota {
    let rate = NonZeroU32::new(limit.rate).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(limit.burst.unwrap_or(limit.rate)).unwrap_or(NonZeroU32::MIN);
    match limit.per {
        Per::Second => Quota::per_second(rate),
        Per::Minute => Quota::per_minute(rate),
    }
    .allow_burst(burst)
}
