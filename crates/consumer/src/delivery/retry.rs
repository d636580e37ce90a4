//! Retry policy as data: a pure classification of a SIEM's answer, the schedule (exponential
//! with jitter via `backoff`, honouring `Retry-After`), and the loop that applies them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use backoff::backoff::Backoff;
use backoff::exponential::ExponentialBackoff;

/// What to do after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// Transient: try again on the backoff schedule.
    Retry,
    /// Transient, and the server said when: not before this delay.
    RetryAfter(Duration),
    /// The request itself is wrong; retrying cannot help.
    Permanent,
}

/// Longest `Retry-After` we honour; a server asking for more is waited on for this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Classify an HTTP status (and its `Retry-After` header). Network errors and timeouts are
/// classified by the caller as [`Verdict::Retry`].
pub fn classify(status: u16, retry_after: Option<&str>, now: SystemTime) -> Verdict {
    match status {
        200..=299 => Verdict::Success,
        408 | 429 | 500 | 502..=599 => retry_after
            .and_then(|v| parse_retry_after(v, now))
            .map(Verdict::RetryAfter)
            .unwrap_or(Verdict::Retry),
        _ => Verdict::Permanent,
    }
}

/// `Retry-After` as delay-seconds or an HTTP date, clamped to [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let when: SystemTime = chrono::DateTime::parse_from_rfc2822(value).ok()?.into();
        when.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// The retry schedule's parameters (from configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max_interval: Duration,
    pub multiplier: f64,
    /// 0.0 = no jitter; 0.5 = each wait is within ±50%.
    pub jitter: f64,
    /// Give up (dead letter) when the next attempt would start after this much time.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max_interval: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.5,
            max_elapsed: Duration::from_secs(300),
        }
    }
}

/// A clock reading tokio's (pausable) time, for `backoff` here and governor in
/// [`super::limits`], so tests can run schedules and limits instantly.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioClock;

impl backoff::Clock for TokioClock {
    fn now(&self) -> std::time::Instant {
        tokio::time::Instant::now().into_std()
    }
}

impl RetryPolicy {
    fn schedule(&self) -> ExponentialBackoff<TokioClock> {
        let mut b = ExponentialBackoff {
            current_interval: self.initial,
            initial_interval: self.initial,
            randomization_factor: self.jitter,
            multiplier: self.multiplier,
            max_interval: self.max_interval,
            max_elapsed_time: Some(self.max_elapsed),
            clock: TokioClock,
            start_time: tokio::time::Instant::now().into_std(),
        };
        b.reset();
        b
    }
}

/// Endpoints (scheme, host and port) that requests are waiting to retry on, each with the
/// signal that a request to it succeeded again. A SIEM back from an outage wakes every stream
/// backing off from it at its first success instead of at each stream's next backoff step
/// (up to `retry_max_interval` later: 30 s by default), so the backlog starts draining at
/// once. The wait is only shortened for plain transient failures: a `Retry-After` is kept.
/// Woken requests still queue for the engine's request permits, which bound the burst.
#[derive(Debug, Default)]
pub struct Recovery {
    waiting: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
    /// `waiting.len()`, readable without the lock: a success checks it first.
    count: AtomicUsize,
}

impl Recovery {
    /// The signal a request failing on `url`'s endpoint waits on alongside its backoff.
    pub fn failed(&self, url: &str) -> Arc<tokio::sync::Notify> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let notify = waiting
            .entry(endpoint(url).to_string())
            .or_default()
            .clone();
        self.count.store(waiting.len(), Ordering::Relaxed);
        notify
    }

    /// A request to `url` succeeded: wake whatever waits on its endpoint.
    pub fn succeeded(&self, url: &str) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(notify) = waiting.remove(endpoint(url)) {
            notify.notify_waiters();
        }
        self.count.store(waiting.len(), Ordering::Relaxed);
    }
}

/// The time left until `max_elapsed`, if any.
fn last_chance(policy: &RetryPolicy, started: tokio::time::Instant) -> Option<Duration> {
    Some(policy.max_elapsed.checked_sub(started.elapsed())?).filter(|left| !left.is_zero())
}

/// `scheme://authority` of a URL (the part a request's success says something about).
fn endpoint(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// The result of one attempt, as seen by the retry loop.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub verdict: Verdict,
    /// HTTP status, `None` for network errors and timeouts.
    pub status: Option<u16>,
    /// Response body excerpt or error text, capped.
    pub detail: String,
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered {
        attempts: u32,
        /// The answer's body (capped), e.g. a HEC reply with an `ackId`.
        reply: String,
    },
    /// A [`Verdict::Permanent`] answer: the SIEM (or the SSRF guard) rejected the request
    /// for good; its events become dead letters of reason `rejected`. ("Rejected" means only
    /// this in the crate.)
    Rejected { attempts: u32, last: Attempt },
    /// Transient failures past `max_elapsed`.
    Exhausted { attempts: u32, last: Attempt },
    /// Shutdown came first; the events stay unfinished and are re-read after restart.
    Cancelled { attempts: u32 },
}

/// Run `send` until success, a permanent answer, `max_elapsed` or cancellation. A
/// `Retry-After` is never undercut: the wait is the larger of it and the backoff step.
/// Other waits end early when another request to the same endpoint (`recovery`: the
/// engine's register and the request's URL) succeeds. `on_retry` is told of each retry (for
/// metrics and logs).
pub async fn run<F, Fut>(
    policy: &RetryPolicy,
    cancel: &tokio_util::sync::CancellationToken,
    recovery: Option<(&Recovery, &str)>,
    mut send: F,
    mut on_retry: impl FnMut(&Attempt, Duration),
) -> Outcome
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Attempt>,
{
    let mut schedule = policy.schedule();
    let started = tokio::time::Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let attempt = send().await;
        let wait = match attempt.verdict {
            Verdict::Success => {
                if let Some((register, url)) = recovery {
                    register.succeeded(url);
                }
                return Outcome::Delivered {
                    attempts,
                    reply: attempt.detail,
                };
            }
            Verdict::Permanent => {
                return Outcome::Rejected {
                    attempts,
                    last: attempt,
                }
            }
            // When the next step would end past `max_elapsed`, one last attempt is made at
            // `max_elapsed` itself: failing for `max_elapsed` means exactly that, not "until
            // a long random step no longer fits" (which gave up a third of the way in).
            Verdict::Retry => schedule
                .next_backoff()
                .or_else(|| last_chance(policy, started)),
            Verdict::RetryAfter(after) => schedule
                .next_backoff()
                .map(|step| step.max(after))
                .or_else(|| last_chance(policy, started).filter(|left| *left >= after)),
        };
        let Some(wait) = wait else {
            return Outcome::Exhausted {
                attempts,
                last: attempt,
            };
        };
        on_retry(&attempt, wait);
        let woken = match (attempt.verdict, recovery) {
            (Verdict::Retry, Some((register, url))) => Some(register.failed(url)),
            _ => None,
        };
        let recovered = async {
            match &woken {
                Some(notify) => notify.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return Outcome::Cancelled { attempts },
            _ = tokio::time::sleep(wait) => {}
            _ = recovered => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn classification_table() {
        let cases: &[(u16, Verdict)] = &[
            (200, Verdict::Success),
            (204, Verdict::Success),
            (400, Verdict::Permanent),
            (401, Verdict::Permanent),
            (403, Verdict::Permanent),
            (404, Verdict::Permanent),
            (408, Verdict::Retry),
            (413, Verdict::Permanent),
            (429, Verdict::Retry),
            (500, Verdict::Retry),
            (501, Verdict::Permanent),
            (502, Verdict::Retry),
            (503, Verdict::Retry),
            (504, Verdict::Retry),
            (301, Verdict::Permanent),
        ];
        for (status, want) in cases {
            assert_eq!(classify(*status, None, now()), *want, "{status}");
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            classify(429, Some("3"), now()),
            Verdict::RetryAfter(Duration::from_secs(3))
        );
        let date =
            chrono::DateTime::<chrono::Utc>::from(now() + Duration::from_secs(7)).to_rfc2822();
        assert_eq!(
            classify(503, Some(&date), now()),
            Verdict::RetryAfter(Duration::from_secs(7))
        );
        assert_eq!(
            classify(503, Some("99999"), now()),
            Verdict::RetryAfter(MAX_RETRY_AFTER)
        );
        assert_eq!(classify(503, Some("soon"), now()), Verdict::Retry);
        assert_eq!(classify(400, Some("3"), now()), Verdict::Permanent);
    }

    fn scripted(
        statuses: Vec<(u16, Option<&'static str>)>,
    ) -> impl FnMut() -> std::future::Ready<Attempt> {
        let mut it = statuses.into_iter();
        move || {
            let (status, ra) = it.next().unwrap_or((200, None));
            std::future::ready(Attempt {
                verdict: classify(status, ra, SystemTime::now()),
                status: Some(status),
                detail: String::new(),
            })
        }
    }

    fn no_jitter() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(100),
            max_interval: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.0,
            max_elapsed: Duration::from_secs(60),
        }
    }

    /// Run the no-jitter policy over `send`, recording when (since start) each attempt began.
    async fn timed(
        mut send: impl FnMut() -> std::future::Ready<Attempt>,
    ) -> (Outcome, Vec<Duration>) {
        let cancel = tokio_util::sync::CancellationToken::new();
        let start = tokio::time::Instant::now();
        let times = Arc::new(Mutex::new(Vec::new()));
        let t = times.clone();
        let outcome = run(
            &no_jitter(),
            &cancel,
            None,
            move || {
                t.lock().unwrap().push(start.elapsed());
                send()
            },
            |_, _| {},
        )
        .await;
        let times = times.lock().unwrap().clone();
        (outcome, times)
    }

    #[tokio::test(start_paused = true)]
    async fn three_500s_then_200_is_four_attempts_on_schedule() {
        let (outcome, times) = timed(scripted(vec![
            (500, None),
            (500, None),
            (500, None),
            (200, None),
        ]))
        .await;
        assert!(matches!(outcome, Outcome::Delivered { attempts: 4, .. }));
        let ms: Vec<u128> = times.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![0, 100, 300, 700]);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_never_undercut() {
        let (outcome, times) = timed(scripted(vec![(429, Some("3")), (200, None)])).await;
        assert!(matches!(outcome, Outcome::Delivered { attempts: 2, .. }));
        assert!(times[1] >= Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_http_date_is_never_undercut() {
        let when =
            chrono::DateTime::<chrono::Utc>::from(SystemTime::now() + Duration::from_secs(5))
                .to_rfc2822();
        let mut first = true;
        let (outcome, times) = timed(move || {
            let status = if std::mem::take(&mut first) { 503 } else { 200 };
            // The date is relative to wall-clock time, which paused tokio time does not move.
            std::future::ready(Attempt {
                verdict: classify(status, Some(&when), SystemTime::now()),
                status: Some(status),
                detail: String::new(),
            })
        })
        .await;
        assert!(matches!(outcome, Outcome::Delivered { attempts: 2, .. }));
        assert!(times[1] >= Duration::from_secs(4), "{times:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_is_one_attempt_and_exhaustion_stops() {
        let cancel = tokio_util::sync::CancellationToken::new();
        for status in [400u16, 401, 403] {
            let outcome = run(
                &no_jitter(),
                &cancel,
                None,
                scripted(vec![(status, None)]),
                |_, _| {},
            )
            .await;
            match outcome {
                Outcome::Rejected { attempts: 1, last } => assert_eq!(last.status, Some(status)),
                other => panic!("{status}: {other:?}"),
            }
        }
        let policy = RetryPolicy {
            max_elapsed: Duration::from_secs(5),
            ..no_jitter()
        };
        let outcome = run(
            &policy,
            &cancel,
            None,
            scripted(vec![(503, None); 100]),
            |_, _| {},
        )
        .await;
        assert!(
            matches!(outcome, Outcome::Exhausted { attempts, .. } if attempts > 3 && attempts < 10),
            "{outcome:?}"
        );
    }

    #[test]
    fn endpoints_are_scheme_host_and_port() {
        let cases = [
            (
                "https://splunk.example:8088/services/collector/event",
                "https://splunk.example:8088",
            ),
            ("https://intake.example?x=1", "https://intake.example"),
            ("http://10.0.0.1:9200/_bulk", "http://10.0.0.1:9200"),
            ("https://a.example", "https://a.example"),
        ];
        for (url, want) in cases {
            assert_eq!(endpoint(url), want, "{url}");
        }
    }

    /// Stream A backs off from a 503 (next attempt 8 s later); stream B's request to the same
    /// endpoint succeeds at 1 s: A retries then, not at 8 s. A stream waiting on another
    /// endpoint, or on a `Retry-After`, keeps its wait.
    #[tokio::test(start_paused = true)]
    async fn a_success_on_the_endpoint_ends_other_streams_backoff() {
        let recovery = Arc::new(Recovery::default());
        let cancel = tokio_util::sync::CancellationToken::new();
        let policy = RetryPolicy {
            initial: Duration::from_secs(8),
            ..no_jitter()
        };
        let start = tokio::time::Instant::now();
        let waiter = |url: &'static str, first: (u16, Option<&'static str>)| {
            let (recovery, cancel) = (recovery.clone(), cancel.clone());
            tokio::spawn(async move {
                let (outcome, times) = {
                    let times = Arc::new(Mutex::new(Vec::new()));
                    let t = times.clone();
                    let mut script = scripted(vec![first, (200, None)]);
                    let outcome = run(
                        &policy,
                        &cancel,
                        Some((&recovery, url)),
                        move || {
                            t.lock().unwrap().push(start.elapsed());
                            script()
                        },
                        |_, _| {},
                    )
                    .await;
                    let times = times.lock().unwrap().clone();
                    (outcome, times)
                };
                assert!(
                    matches!(outcome, Outcome::Delivered { attempts: 2, .. }),
                    "{outcome:?}"
                );
                times[1]
            })
        };
        let same = waiter("https://siem.example:8088/services/collector", (503, None));
        let other = waiter("https://other.example/services/collector", (503, None));
        let after = waiter("https://siem.example:8088/x", (503, Some("5")));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let b = run(
            &policy,
            &cancel,
            Some((
                &*recovery,
                "https://siem.example:8088/services/collector/event",
            )),
            scripted(vec![(200, None)]),
            |_, _| {},
        )
        .await;
        assert!(matches!(b, Outcome::Delivered { attempts: 1, .. }));
        assert_eq!(
            same.await.unwrap(),
            Duration::from_secs(1),
            "woken by B's success"
        );
        assert_eq!(
            other.await.unwrap(),
            Duration::from_secs(8),
            "another endpoint"
        );
        assert_eq!(
            after.await.unwrap(),
            Duration::from_secs(8),
            "Retry-After kept (and its 8 s step)"
        );
        assert_eq!(
            recovery.count.load(Ordering::Relaxed),
            0,
            "nothing left waiting"
        );
    }

    /// Steps 0.1, 0.2, 0.4 ... s: the attempt after 3.1 s would come at 6.3 s, past the 5 s
    /// window, so the last one is made at 5 s exactly; then the retries are exhausted.
    #[tokio::test(start_paused = true)]
    async fn the_last_attempt_comes_at_max_elapsed() {
        let cancel = tokio_util::sync::CancellationToken::new();
        let policy = RetryPolicy {
            max_elapsed: Duration::from_secs(5),
            ..no_jitter()
        };
        let start = tokio::time::Instant::now();
        let times = Arc::new(Mutex::new(Vec::new()));
        let t = times.clone();
        let mut script = scripted(vec![(503, None); 100]);
        let outcome = run(
            &policy,
            &cancel,
            None,
            move || {
                t.lock().unwrap().push(start.elapsed().as_millis());
                script()
            },
            |_, _| {},
        )
        .await;
        assert!(
            matches!(outcome, Outcome::Exhausted { attempts: 7, .. }),
            "{outcome:?}"
        );
        assert_eq!(
            *times.lock().unwrap(),
            vec![0, 100, 300, 700, 1500, 3100, 5000]
        );
    }
}
