//! Stream health: every stream of every org has a state ([`StreamState`]) its org can see.
//! States, held counts and quotas are per stream, keyed by the encoded [`StreamKey`] (the
//! bare org id for the stream `default`, so states recorded before streams existed are its).
//!
//! - `active`: events flow. A transient failure (5xx, 429, network) makes it `failing`
//!   while the worker retries; a success makes it `active` again.
//! - `paused`: a configuration-type answer (401/403, 404/410, HEC codes 1-4, 7, 10, 11, 14;
//!   [`is_configuration_error`]) or failing longer than `pause_after`. The stream's events
//!   are held in the park store (durable, and in the state changelog), so the partition keeps
//!   flowing for every other org; one probe (the oldest held event) goes out per
//!   `probe_interval` (`probing`), and a successful probe resumes the stream. A settings
//!   change or a successful test event resumes it at once. Held events go out in order
//!   before new ones (they are parked ahead of them).
//! - `paused_by_user`: held until resumed through the API.
//! - `disabled`: `enabled: false` (not streamed).
//!
//! Dead letters come only after the retry window (`retry_max_elapsed`, 24 h by default) of
//! failing, or past the per-org hold quota (`quota_exceeded`). Every state change is a
//! lifecycle notice ([`notices`]): logged, kept for the API, written to the
//! `els.stream-events` topic (which also brings the states back after a restart), and, when
//! a stream resumes, sent to the org's SIEM as an event of its own.

pub mod key;
pub mod notices;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use els_api::status::{StatusReason, StreamNotice, StreamState, StreamStatus};
use tokio::time::{Duration, Instant};

use crate::metrics::Metrics;

pub use key::StreamKey;
pub use notices::NoticeSink;

/// How streams pause, probe and give up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthKnobs {
    /// Failing this long (transient errors) pauses the stream.
    pub pause_after: Duration,
    /// While paused, one probe per this interval.
    pub probe_interval: Duration,
    /// Failing (paused included) this long: held events are dead-lettered
    /// `retries_exhausted` as they come up.
    pub retry_window: Duration,
    /// Per org: most events and bytes held while paused; past either, new events are
    /// dead-lettered `quota_exceeded`.
    pub hold_max_events: u64,
    pub hold_max_bytes: u64,
}

impl Default for HealthKnobs {
    fn default() -> Self {
        Self {
            pause_after: Duration::from_secs(60),
            probe_interval: Duration::from_secs(30),
            retry_window: Duration::from_secs(24 * 3600),
            hold_max_events: 1_000_000,
            hold_max_bytes: 1 << 30,
        }
    }
}

/// Whether a permanent answer is about the stream's configuration rather than its events:
/// credentials (401/403, HEC codes 1-4), the endpoint (404/410), the index (7), the data
/// channel (10/11) or acks (14). Such a stream pauses instead of dead-lettering.
pub fn is_configuration_error(status: Option<u16>, hec_code: Option<i64>) -> bool {
    matches!(status, Some(401 | 403 | 404 | 410))
        || hec_code.is_some_and(crate::delivery::hec::is_whole_request_code)
}

/// What the consume loop may hand a stream's worker from the park store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// As many as its queue has room for.
    All,
    /// One event: a probe.
    Probe,
    /// Nothing: the stream holds its events.
    Nothing,
}

/// Events delivered and failed per minute over the last hour.
#[derive(Debug, Clone, Default)]
struct HourCounts {
    /// (minute since the epoch, delivered, failed), oldest first, at most 60.
    minutes: VecDeque<(i64, u64, u64)>,
}

impl HourCounts {
    fn add(&mut self, delivered: u64, failed: u64) {
        let minute = Utc::now().timestamp() / 60;
        match self.minutes.back_mut() {
            Some((m, d, f)) if *m == minute => {
                *d += delivered;
                *f += failed;
            }
            _ => self.minutes.push_back((minute, delivered, failed)),
        }
        while self.minutes.len() > 60 {
            self.minutes.pop_front();
        }
    }

    fn last_hour(&self) -> (u64, u64) {
        let from = Utc::now().timestamp() / 60 - 59;
        self.minutes
            .iter()
            .filter(|(m, _, _)| *m >= from)
            .fold((0, 0), |(d, f), (_, dd, ff)| (d + dd, f + ff))
    }
}

/// One org's stream.
#[derive(Debug, Clone)]
struct OrgStream {
    state: StreamState,
    since: DateTime<Utc>,
    reason: Option<StatusReason>,
    last_success: Option<DateTime<Utc>>,
    /// Since when it has been failing (paused included), for the pause threshold and the
    /// retry window.
    failing_since: Option<Instant>,
    next_probe: Option<Instant>,
    /// The settings it paused with (their address): new settings resume it.
    paused_settings: usize,
    /// Set when it resumed after a pause: (paused at, why), for the lifecycle event.
    resumed_from: Option<(DateTime<Utc>, Option<StatusReason>)>,
    counts: HourCounts,
}

impl OrgStream {
    fn new() -> Self {
        Self {
            state: StreamState::Active,
            since: Utc::now(),
            reason: None,
            last_success: None,
            failing_since: None,
            next_probe: None,
            paused_settings: 0,
            resumed_from: None,
            counts: HourCounts::default(),
        }
    }
}

/// Events and bytes held in the park store per org, kept by the park store.
#[derive(Debug, Default)]
pub struct Held {
    by_org: Mutex<HashMap<String, (u64, u64)>>,
}

/// `org`'s entry, made if missing (the key is copied only then: delivery runs this per batch).
fn stream_mut<'m>(streams: &'m mut HashMap<String, OrgStream>, org: &str) -> &'m mut OrgStream {
    if !streams.contains_key(org) {
        streams.insert(org.to_string(), OrgStream::new());
    }
    streams.get_mut(org).expect("inserted above")
}

impl Held {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (u64, u64)>> {
        self.by_org.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Add (or with negative values remove) events and bytes of `org`.
    pub fn add(&self, org: &str, events: i64, bytes: i64) {
        let mut map = self.lock();
        let entry = map.entry(org.to_string()).or_default();
        entry.0 = entry.0.saturating_add_signed(events);
        entry.1 = entry.1.saturating_add_signed(bytes);
        if entry.0 == 0 {
            map.remove(org);
        }
    }

    /// Forget every count (the park store recounts).
    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn of(&self, org: &str) -> (u64, u64) {
        self.lock().get(org).copied().unwrap_or_default()
    }

    pub fn orgs(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

/// `paused_settings` of a stream restored paused: the first settings seen become its own.
const UNKNOWN_SETTINGS: usize = usize::MAX;

/// Recent notices kept per org for the API.
const HISTORY: usize = 100;

/// Every org's stream state, shared by the workers, the consume loop and the admin API.
pub struct StreamStates {
    streams: Mutex<HashMap<String, OrgStream>>,
    history: Mutex<HashMap<String, VecDeque<StreamNotice>>>,
    pub held: Arc<Held>,
    pub knobs: HealthKnobs,
    sink: Mutex<Option<NoticeSink>>,
    metrics: Metrics,
    /// When this instance started: the `since` of streams it has seen nothing of.
    started: DateTime<Utc>,
}

impl StreamStates {
    pub fn new(knobs: HealthKnobs, metrics: Metrics) -> Self {
        let states = Self {
            streams: Mutex::new(HashMap::new()),
            history: Mutex::new(HashMap::new()),
            held: Arc::new(Held::default()),
            knobs,
            sink: Mutex::new(None),
            metrics,
            started: Utc::now(),
        };
        states.count_states(&HashMap::new());
        states
    }

    /// Write notices to `sink` (the `els.stream-events` topic) from now on.
    pub fn attach_sink(&self, sink: NoticeSink) {
        *self.sink.lock().unwrap_or_else(PoisonError::into_inner) = Some(sink);
    }

    /// Bring back the states recorded in notices (the topic, read at start): a stream last
    /// paused stays paused (probing starts over), one paused by its user stays so.
    pub fn restore(&self, notices: Vec<StreamNotice>) {
        let mut streams = self.lock();
        let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        for notice in notices {
            let key = StreamKey::new(&notice.org, &notice.stream);
            let stream = stream_mut(&mut streams, key.as_str());
            stream.state = match notice.to {
                StreamState::Probing => StreamState::Paused,
                StreamState::Failing => StreamState::Active,
                other => other,
            };
            stream.since = notice.at;
            stream.reason = notice.reason.clone();
            if stream.state == StreamState::Paused {
                stream.failing_since = Some(Instant::now());
                stream.next_probe = Some(Instant::now() + self.knobs.probe_interval);
                // Settings it paused with are not known here: the current ones count as such.
                stream.paused_settings = UNKNOWN_SETTINGS;
            } else {
                stream.failing_since = None;
                stream.next_probe = None;
            }
            let h = history.entry(notice.org.clone()).or_default();
            h.push_back(notice);
            while h.len() > HISTORY {
                h.pop_front();
            }
        }
        drop(history);
        self.count_states(&streams);
    }

    /// Streams restored paused take `settings_of(org)` (the current settings' address) as the
    /// settings they paused with, so only a later change resumes them. Called at start, once
    /// the settings are read.
    pub fn adopt_settings(&self, settings_of: impl Fn(&str) -> usize) {
        for (org, stream) in self.lock().iter_mut() {
            if stream.paused_settings == UNKNOWN_SETTINGS {
                stream.paused_settings = settings_of(org);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, OrgStream>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn state(&self, org: &str) -> StreamState {
        self.lock()
            .get(org)
            .map_or(StreamState::Active, |s| s.state)
    }

    /// Whether the org's events are held (parked) rather than sent.
    pub fn holds(&self, org: &str) -> bool {
        self.state(org).holds()
    }

    /// Move `stream` of `org` to `to`, recording the notice (unless it only toggles
    /// between paused and probing, which happens every probe interval).
    fn transition(
        &self,
        streams: &mut HashMap<String, OrgStream>,
        org: &str,
        to: StreamState,
        reason: Option<StatusReason>,
    ) {
        let stream = stream_mut(streams, org);
        let from = stream.state;
        if from == to {
            return;
        }
        stream.state = to;
        let probing_cycle = matches!(
            (from, to),
            (StreamState::Paused, StreamState::Probing)
                | (StreamState::Probing, StreamState::Paused)
        );
        if probing_cycle {
            return;
        }
        let at = Utc::now();
        if from.holds() && !to.holds() {
            stream.resumed_from = Some((stream.since, stream.reason.clone()));
        }
        stream.since = at;
        // A reason says why a stream is not active; the notice keeps why it became active.
        stream.reason = if to == StreamState::Active {
            None
        } else {
            reason.clone()
        };
        let (org_id, stream_id) = key::split(org);
        let notice = StreamNotice {
            org: org_id.to_string(),
            stream: stream_id.to_string(),
            // Probing is a moment of a pause (its cycles are not notices): a stream resuming
            // from a probe resumes from `paused`.
            from: if from == StreamState::Probing {
                StreamState::Paused
            } else {
                from
            },
            to,
            reason,
            at,
        };
        self.record(notice);
        self.count_states(streams);
    }

    fn record(&self, notice: StreamNotice) {
        let why = notice
            .reason
            .as_ref()
            .map(|r| r.text.as_str())
            .unwrap_or("");
        let status = notice.reason.as_ref().and_then(|r| r.status);
        let code = notice.reason.as_ref().and_then(|r| r.hec_code);
        if notice.to.holds() {
            tracing::warn!(
                org_id = %notice.org,
                stream = %notice.stream,
                from = notice.from.as_str(),
                to = notice.to.as_str(),
                status,
                hec_code = code,
                reason = why,
                "stream state changed"
            );
        } else {
            tracing::info!(
                org_id = %notice.org,
                stream = %notice.stream,
                from = notice.from.as_str(),
                to = notice.to.as_str(),
                status,
                hec_code = code,
                reason = why,
                "stream state changed"
            );
        }
        if let Some(sink) = self
            .sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            sink.send(&notice);
        }
        let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        let h = history.entry(notice.org.clone()).or_default();
        h.push_back(notice);
        while h.len() > HISTORY {
            h.pop_front();
        }
    }

    fn count_states(&self, streams: &HashMap<String, OrgStream>) {
        let mut by: BTreeMap<StreamState, i64> = StreamState::ALL.map(|s| (s, 0)).into();
        for s in streams.values() {
            *by.entry(s.state).or_default() += 1;
        }
        for (state, n) in by {
            self.metrics
                .streams
                .with_label_values(&[state.as_str()])
                .set(n);
        }
    }

    /// `n` events of `org` were delivered: the stream is active (resumed, if it was not).
    pub fn delivered(&self, org: &str, n: u64) {
        let mut streams = self.lock();
        let stream = stream_mut(&mut streams, org);
        stream.counts.add(n, 0);
        stream.last_success = Some(Utc::now());
        stream.failing_since = None;
        stream.next_probe = None;
        if stream.state != StreamState::Active && stream.state != StreamState::PausedByUser {
            let reason = StatusReason {
                text: "the SIEM accepted events again".into(),
                ..StatusReason::default()
            };
            self.transition(&mut streams, org, StreamState::Active, Some(reason));
        }
    }

    /// An attempt at `n` events of `org` failed transiently (it will be retried): `failing`.
    pub fn failed(&self, org: &str, n: u64, reason: StatusReason) {
        let mut streams = self.lock();
        let stream = stream_mut(&mut streams, org);
        stream.counts.add(0, n);
        stream.failing_since.get_or_insert_with(Instant::now);
        if stream.state == StreamState::Active {
            self.transition(&mut streams, org, StreamState::Failing, Some(reason));
        }
    }

    /// Pause `org` (held events, probes) because of `reason`; `settings` identifies the
    /// settings it failed with (new settings resume it).
    pub fn pause(&self, org: &str, n: u64, reason: StatusReason, settings: usize) {
        let mut streams = self.lock();
        let stream = stream_mut(&mut streams, org);
        stream.counts.add(0, n);
        stream.failing_since.get_or_insert_with(Instant::now);
        stream.next_probe = Some(Instant::now() + self.knobs.probe_interval);
        stream.paused_settings = settings;
        if stream.state == StreamState::PausedByUser {
            return;
        }
        if stream.state == StreamState::Probing {
            // A failed probe: paused again, with the latest answer.
            stream.reason = Some(reason.clone());
        }
        self.transition(&mut streams, org, StreamState::Paused, Some(reason));
    }

    /// Whether `org` has been failing for the whole retry window (its held events are then
    /// dead-lettered as they come up).
    pub fn window_expired(&self, org: &str) -> bool {
        self.lock()
            .get(org)
            .and_then(|s| s.failing_since)
            .is_some_and(|t| t.elapsed() >= self.knobs.retry_window)
    }

    /// Whether `org` has been failing longer than the pause threshold.
    pub fn failing_too_long(&self, org: &str) -> bool {
        self.lock()
            .get(org)
            .and_then(|s| s.failing_since)
            .is_some_and(|t| t.elapsed() >= self.knobs.pause_after)
    }

    /// What the consume loop may hand `org`'s worker from the park store now; `settings`
    /// identifies the org's current settings. A paused stream whose settings changed
    /// resumes; one whose probe is due gets one event (`probing`), or, past the retry
    /// window, all (to dead-letter them).
    pub fn release(&self, org: &str, settings: usize) -> Release {
        let mut streams = self.lock();
        let Some(stream) = streams.get_mut(org) else {
            return Release::All;
        };
        match stream.state {
            StreamState::Active | StreamState::Failing | StreamState::Disabled => Release::All,
            StreamState::PausedByUser => Release::Nothing,
            // A probe that never came back (filtered after a settings change, a hard stop):
            // another one after the interval.
            StreamState::Probing => {
                let due = stream.next_probe.is_none_or(|t| Instant::now() >= t);
                if due {
                    stream.next_probe = Some(Instant::now() + self.knobs.probe_interval);
                    Release::Probe
                } else {
                    Release::Nothing
                }
            }
            StreamState::Paused if stream.paused_settings == UNKNOWN_SETTINGS => {
                stream.paused_settings = settings;
                Release::Nothing
            }
            StreamState::Paused if stream.paused_settings != settings => {
                stream.failing_since = None;
                let reason = StatusReason {
                    text: "the org's settings changed".into(),
                    ..StatusReason::default()
                };
                self.transition(&mut streams, org, StreamState::Active, Some(reason));
                Release::All
            }
            StreamState::Paused => {
                let due = stream.next_probe.is_none_or(|t| Instant::now() >= t);
                if !due {
                    return Release::Nothing;
                }
                let expired = stream
                    .failing_since
                    .is_some_and(|t| t.elapsed() >= self.knobs.retry_window);
                stream.next_probe = Some(Instant::now() + self.knobs.probe_interval);
                self.transition(&mut streams, org, StreamState::Probing, None);
                if expired {
                    Release::All
                } else {
                    Release::Probe
                }
            }
        }
    }

    /// Resume a paused stream at once (a successful test event); not one paused by its user.
    pub fn resume_now(&self, org: &str, text: &str) {
        let mut streams = self.lock();
        let Some(stream) = streams.get_mut(org) else {
            return;
        };
        if matches!(stream.state, StreamState::Paused | StreamState::Probing) {
            stream.failing_since = None;
            let reason = StatusReason {
                text: text.into(),
                ..StatusReason::default()
            };
            self.transition(&mut streams, org, StreamState::Active, Some(reason));
        }
    }

    /// The user pauses `org`'s stream.
    pub fn user_pause(&self, org: &str) {
        let mut streams = self.lock();
        let reason = StatusReason {
            text: "paused by user".into(),
            ..StatusReason::default()
        };
        self.transition(&mut streams, org, StreamState::PausedByUser, Some(reason));
    }

    /// The user resumes `org`'s stream (from any held state).
    pub fn user_resume(&self, org: &str) {
        let mut streams = self.lock();
        if let Some(stream) = streams.get_mut(org) {
            stream.failing_since = None;
            stream.next_probe = None;
            if stream.state.holds() || stream.state == StreamState::Failing {
                let reason = StatusReason {
                    text: "resumed by user".into(),
                    ..StatusReason::default()
                };
                self.transition(&mut streams, org, StreamState::Active, Some(reason));
            }
        }
    }

    /// Once after a resume: when the stream paused and why (for the lifecycle event).
    pub fn take_resumed(&self, org: &str) -> Option<(DateTime<Utc>, Option<StatusReason>)> {
        self.lock().get_mut(org)?.resumed_from.take()
    }

    /// The status of `org`'s stream; `disabled` when its settings say `enabled: false`.
    pub fn status(&self, org: &str, disabled: bool) -> StreamStatus {
        let stream = self.lock().get(org).cloned().unwrap_or_else(|| OrgStream {
            since: self.started,
            ..OrgStream::new()
        });
        let (held_events, held_bytes) = self.held.of(org);
        let (delivered_last_hour, failed_last_hour) = stream.counts.last_hour();
        let state = if disabled && !stream.state.holds() {
            StreamState::Disabled
        } else {
            stream.state
        };
        let (org_id, stream_id) = key::split(org);
        StreamStatus {
            org: org_id.to_string(),
            stream: stream_id.to_string(),
            state,
            since: stream.since,
            reason: stream.reason,
            last_success: stream.last_success,
            held_events,
            held_bytes,
            delivered_last_hour,
            failed_last_hour,
        }
    }

    /// Whether this instance knows anything of `org`'s stream.
    pub fn knows(&self, org: &str) -> bool {
        self.lock().contains_key(org) || self.held.of(org).0 > 0
    }

    /// Orgs whose stream has a state, counts or held events here.
    pub fn orgs(&self) -> Vec<String> {
        let mut orgs: Vec<String> = self.lock().keys().cloned().collect();
        orgs.extend(self.held.orgs());
        orgs.sort();
        orgs.dedup();
        orgs
    }

    /// The org's recent notices (all its streams), oldest first.
    pub fn notices(&self, org: &str, limit: usize) -> Vec<StreamNotice> {
        let history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(h) = history.get(org) else {
            return Vec::new();
        };
        h.iter()
            .skip(h.len().saturating_sub(limit))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests;
