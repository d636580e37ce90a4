//! What the simulator remembers: counters, the received event ids (all of them, in arrival
//! order, duplicates included) and a bounded window of full records.
//!
//! [`Sim`] is the shared handle the routes use and that in-process tests may read directly.
//! Locks are `std::sync::Mutex`, held only for short copies and never across an `.await`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::elastic::EsDocs;
use crate::faults::{Faults, Injected};
use crate::Error;

/// Distinct org ids counted in [`Stats::orgs`]; later orgs are counted as `__other__`.
pub const MAX_ORGS: usize = 1000;
/// Label for orgs beyond [`MAX_ORGS`].
pub const OTHER_ORGS: &str = "__other__";
/// Default and largest `limit` of [`Sim::events`].
pub const DEFAULT_EVENTS_LIMIT: usize = 1000;
pub const MAX_EVENTS_LIMIT: usize = 10_000;

/// One stored event: a HEC envelope, or a generic endpoint's whole body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 1-based arrival number; `GET /sim/events?after=K` returns records with `seq > K`.
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds.
    pub received_at: String,
    pub path: String,
    /// Request headers; the `authorization` value is replaced by `<redacted>`.
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

/// A record as kept: the body as its JSON text and what the events of one request share
/// behind `Arc`s. A window of 250,000 records as `Value` trees with their own header maps
/// was ~60 live allocations per event; glibc's malloc then spent most of siem-sim's CPU
/// consolidating and searching its free lists, which capped a long benchmark soak at about
/// 40,000 events/s. Records are rebuilt as [`Record`] when read (`GET /sim/events`).
#[derive(Debug)]
struct Kept {
    seq: u64,
    request: Arc<RequestInfo>,
    body: Box<RawValue>,
}

/// What the events of one request share.
#[derive(Debug)]
struct RequestInfo {
    received_at: String,
    path: String,
    headers: BTreeMap<String, String>,
}

impl Kept {
    fn record(&self) -> Record {
        Record {
            seq: self.seq,
            received_at: self.request.received_at.clone(),
            path: self.request.path.clone(),
            headers: self.request.headers.clone(),
            // The text came from a `Value`, so it parses back to it.
            body: serde_json::from_str(self.body.get()).unwrap_or(Value::Null),
        }
    }
}

/// An event ready to be stored: its id and org read, its body as JSON text (`None` when
/// no records are kept), all done before the store is locked.
struct Prepared {
    id: Option<String>,
    org: Option<String>,
    body: Option<Box<RawValue>>,
}

impl Prepared {
    fn new(body: Value, id: Option<String>, keep: bool) -> Self {
        Prepared {
            id: id.or_else(|| event_id(&body)),
            org: org_id(&body),
            body: keep
                .then(|| serde_json::value::to_raw_value(&body).ok())
                .flatten(),
        }
    }
}

/// An event id as remembered: a UUID in its canonical form (lowercase, hyphenated, as ELS
/// writes them) as its 128 bits, anything else as its text. Tens of millions of ids are kept
/// in a long soak; a heap string each cost one allocation and ~90 bytes per id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Id {
    Uuid(u128),
    Text(Arc<str>),
}

impl Id {
    fn new(text: String) -> Self {
        canonical_uuid(&text).map_or_else(|| Id::Text(text.into()), Id::Uuid)
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Id::Uuid(bits) => {
                let h = format!("{bits:032x}");
                write!(
                    f,
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                )
            }
            Id::Text(text) => f.write_str(text),
        }
    }
}

/// The bits of `text` when it is a UUID written exactly as `Id::Uuid` prints one.
fn canonical_uuid(text: &str) -> Option<u128> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 || [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
        return None;
    }
    let mut bits = 0u128;
    for (i, &b) in bytes.iter().enumerate() {
        if [8, 13, 18, 23].contains(&i) {
            continue;
        }
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        bits = bits << 4 | u128::from(digit);
    }
    Some(bits)
}

/// Counters answered by `GET /sim/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Ingest requests received (HEC and generic), answered or not.
    pub requests: u64,
    /// Events stored (accepted), including those whose record was since dropped.
    pub events: u64,
    pub distinct_event_ids: u64,
    /// Events whose `event_id` had been received before.
    pub duplicates: u64,
    /// Ingest answers by HTTP status (`"200"`, `"503"`, ...).
    pub by_status: BTreeMap<String, u64>,
    /// Accepted events by `org_id`, when events carry one.
    pub orgs: BTreeMap<String, u64>,
    /// Arrival of the first and the latest accepted event (RFC 3339, milliseconds), kept
    /// even when their records were dropped for `max_stored`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_received_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_received_at: Option<String>,
    /// Ack ids handed out (ack-enabled tokens) not yet reported `true` by the ack endpoint.
    #[serde(default)]
    pub acks_pending: u64,
    /// Ack ids reported `true` by the ack endpoint (each once; Splunk forgets them then).
    #[serde(default)]
    pub acks_acked: u64,
    /// Requests refused for a missing or invalid data channel (codes 10 and 11).
    #[serde(default)]
    pub channel_errors: u64,
    /// Requests to the ack endpoint (`/services/collector/ack`), whatever the answer.
    #[serde(default)]
    pub ack_queries: u64,
    /// Counters per receiver (`hec`, `generic`, `http_ndjson`, `http_array`,
    /// `elastic_bulk`, `datadog_logs`, `logs_ingestion`, `oauth_token`); a receiver appears
    /// once it has had a request.
    #[serde(default)]
    pub receivers: BTreeMap<String, ReceiverStats>,
    /// Access tokens handed out by the OAuth2 token endpoint.
    #[serde(default)]
    pub oauth_tokens_issued: u64,
    /// Token requests refused (`invalid_client`, `unsupported_grant_type`, ...).
    #[serde(default)]
    pub oauth_token_errors: u64,
    /// Requests refused with 401 because their OAuth2 access token had expired.
    #[serde(default)]
    pub oauth_expired_tokens: u64,
    /// Requests refused with 401 because their bearer token was never issued (nor static).
    #[serde(default)]
    pub oauth_unknown_tokens: u64,
}

/// One receiver's counters in [`Stats::receivers`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiverStats {
    /// Requests received, answered or not.
    pub requests: u64,
    /// Events stored.
    pub events: u64,
    /// Answers by HTTP status.
    pub by_status: BTreeMap<String, u64>,
    /// Elasticsearch `_bulk`: items by their item status (`"201"`, `"409"`, `"429"`, ...),
    /// since one 200 answer can carry items that failed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub items_by_status: BTreeMap<String, u64>,
    /// Datadog: logs larger than 1 MB that were accepted truncated, as Datadog does.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub truncated: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The endpoints counted apart in [`Stats::receivers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Receiver {
    Hec,
    Generic,
    HttpNdjson,
    HttpArray,
    ElasticBulk,
    DatadogLogs,
    LogsIngestion,
    OAuthToken,
}

impl Receiver {
    pub fn name(self) -> &'static str {
        match self {
            Receiver::Hec => "hec",
            Receiver::Generic => "generic",
            Receiver::HttpNdjson => "http_ndjson",
            Receiver::HttpArray => "http_array",
            Receiver::ElasticBulk => "elastic_bulk",
            Receiver::DatadogLogs => "datadog_logs",
            Receiver::LogsIngestion => "logs_ingestion",
            Receiver::OAuthToken => "oauth_token",
        }
    }
}

/// OAuth2 counters, kept apart from the ingest ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OAuthCount {
    Issued,
    TokenError,
    Expired,
    Unknown,
}

/// One data channel's ack ids ("About HTTP Event Collector Indexer Acknowledgment": ack ids
/// are numbered per channel from 0).
#[derive(Debug, Default)]
struct Channel {
    next_id: u64,
    pending: HashMap<u64, Pending>,
}

#[derive(Debug)]
struct Pending {
    ready_at: Instant,
    never: bool,
}

#[derive(Debug)]
struct Store {
    max_stored: usize,
    next_seq: u64,
    requests: u64,
    events: u64,
    by_status: BTreeMap<u16, u64>,
    records: VecDeque<Kept>,
    /// Every event id in arrival order; shares its strings with `seen`.
    event_ids: Vec<Id>,
    seen: HashSet<Id>,
    orgs: BTreeMap<String, u64>,
    first_at: Option<String>,
    last_at: Option<String>,
    channels: HashMap<String, Channel>,
    acks_issued: u64,
    acks_acked: u64,
    channel_errors: u64,
    ack_queries: u64,
    receivers: BTreeMap<Receiver, ReceiverStats>,
    oauth: [u64; 4],
}

impl Store {
    fn new(max_stored: usize) -> Self {
        Store {
            max_stored,
            next_seq: 1,
            requests: 0,
            events: 0,
            by_status: BTreeMap::new(),
            records: VecDeque::new(),
            event_ids: Vec::new(),
            seen: HashSet::new(),
            orgs: BTreeMap::new(),
            first_at: None,
            last_at: None,
            channels: HashMap::new(),
            acks_issued: 0,
            acks_acked: 0,
            channel_errors: 0,
            ack_queries: 0,
            receivers: BTreeMap::new(),
            oauth: [0; 4],
        }
    }

    fn push(&mut self, request: &Arc<RequestInfo>, event: Prepared) {
        let at = request.received_at.as_str();
        self.events += 1;
        if self.first_at.is_none() {
            self.first_at = Some(at.to_owned());
        }
        if self.last_at.as_deref() != Some(at) {
            self.last_at = Some(at.to_owned());
        }
        if let Some(id) = event.id {
            let id = Id::new(id);
            let id = match self.seen.get(&id) {
                Some(known) => known.clone(),
                None => {
                    self.seen.insert(id.clone());
                    id
                }
            };
            self.event_ids.push(id);
        }
        if let Some(org) = event.org {
            let key = if self.orgs.contains_key(&org) || self.orgs.len() < MAX_ORGS {
                org
            } else {
                OTHER_ORGS.to_owned()
            };
            *self.orgs.entry(key).or_default() += 1;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        // No body: no records are kept (`max_stored` is 0).
        let Some(body) = event.body else { return };
        while self.records.len() >= self.max_stored {
            self.records.pop_front();
        }
        self.records.push_back(Kept {
            seq,
            request: Arc::clone(request),
            body,
        });
    }
}

impl Store {
    fn count_answer(&mut self, receiver: Receiver, status: u16) {
        *self.by_status.entry(status).or_default() += 1;
        *self
            .receivers
            .entry(receiver)
            .or_default()
            .by_status
            .entry(status.to_string())
            .or_default() += 1;
    }
}

/// How [`Sim::accept_items`] counts an answer that stored events.
#[derive(Debug, Clone, Default)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// Bulk item statuses and how many items had each.
    pub(crate) item_statuses: BTreeMap<u16, u64>,
    pub(crate) truncated: u64,
}

/// A string or number at `event.event_id` (HEC envelopes) or `event_id` (generic bodies).
pub(crate) fn event_id(body: &Value) -> Option<String> {
    field(body, "event_id")
}

fn org_id(body: &Value) -> Option<String> {
    field(body, "org_id")
}

fn field(body: &Value, name: &str) -> Option<String> {
    let value = body
        .get("event")
        .and_then(|event| event.get(name))
        .or_else(|| body.get(name))?;
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the counters half-updated in a way that
    // matters to a simulator; keep serving.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Shared state of one simulator: cheap to clone, safe to read from tests while it serves.
#[derive(Debug, Clone)]
pub struct Sim {
    store: Arc<Mutex<Store>>,
    faults: Arc<Mutex<Faults>>,
    /// Elasticsearch: the document ids (and versions) of each index, for `create` conflicts.
    es_docs: Arc<Mutex<EsDocs>>,
    /// Read without the lock: whether bodies need to be kept at all.
    max_stored: usize,
}

impl Sim {
    /// An empty simulator keeping at most `max_stored` full records, with `faults` active.
    pub fn new(max_stored: usize, faults: Faults) -> Result<Self, Error> {
        faults.validate()?;
        Ok(Sim {
            store: Arc::new(Mutex::new(Store::new(max_stored))),
            faults: Arc::new(Mutex::new(faults)),
            es_docs: Arc::new(Mutex::new(HashMap::new())),
            max_stored,
        })
    }

    pub fn stats(&self) -> Stats {
        let store = lock(&self.store);
        let with_id = store.event_ids.len() as u64;
        let distinct = store.seen.len() as u64;
        Stats {
            requests: store.requests,
            events: store.events,
            distinct_event_ids: distinct,
            duplicates: with_id - distinct,
            by_status: store
                .by_status
                .iter()
                .map(|(status, n)| (status.to_string(), *n))
                .collect(),
            orgs: store.orgs.clone(),
            first_received_at: store.first_at.clone(),
            last_received_at: store.last_at.clone(),
            acks_pending: store
                .channels
                .values()
                .map(|c| c.pending.len() as u64)
                .sum(),
            acks_acked: store.acks_acked,
            channel_errors: store.channel_errors,
            ack_queries: store.ack_queries,
            receivers: store
                .receivers
                .iter()
                .map(|(r, s)| (r.name().to_owned(), s.clone()))
                .collect(),
            oauth_tokens_issued: store.oauth[OAuthCount::Issued as usize],
            oauth_token_errors: store.oauth[OAuthCount::TokenError as usize],
            oauth_expired_tokens: store.oauth[OAuthCount::Expired as usize],
            oauth_unknown_tokens: store.oauth[OAuthCount::Unknown as usize],
        }
    }

    /// Stored records with `seq > after`, oldest first, at most `limit` (capped at
    /// [`MAX_EVENTS_LIMIT`]).
    pub fn events(&self, after: u64, limit: usize) -> Vec<Record> {
        let store = lock(&self.store);
        let start = store.records.partition_point(|r| r.seq <= after);
        store
            .records
            .range(start..)
            .take(limit.min(MAX_EVENTS_LIMIT))
            .map(Kept::record)
            .collect()
    }

    /// Every event id received, in arrival order, duplicates included.
    pub fn event_ids(&self) -> Vec<String> {
        lock(&self.store)
            .event_ids
            .iter()
            .map(|id| id.to_string())
            .collect()
    }

    /// Forget all events and counters and clear all faults.
    pub fn reset(&self) {
        {
            let mut store = lock(&self.store);
            let max_stored = store.max_stored;
            *store = Store::new(max_stored);
        }
        *lock(&self.faults) = Faults::default();
        lock(&self.es_docs).clear();
    }

    pub fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    pub fn set_faults(&self, faults: Faults) -> Result<(), Error> {
        faults.validate()?;
        *lock(&self.faults) = faults;
        Ok(())
    }

    pub(crate) fn is_unhealthy(&self) -> bool {
        lock(&self.faults).unhealthy
    }

    /// Count an arriving ingest request and decide its fault.
    pub(crate) fn begin_request(&self, receiver: Receiver) -> Option<Injected> {
        {
            let mut store = lock(&self.store);
            store.requests += 1;
            store.receivers.entry(receiver).or_default().requests += 1;
        }
        lock(&self.faults).take()
    }

    /// Count a request that is not an ingest request (the OAuth2 token endpoint): only in its
    /// receiver's counters.
    pub(crate) fn count_side_request(&self, receiver: Receiver, status: u16) {
        let mut store = lock(&self.store);
        let counters = store.receivers.entry(receiver).or_default();
        counters.requests += 1;
        *counters.by_status.entry(status.to_string()).or_default() += 1;
    }

    pub(crate) fn count_status(&self, receiver: Receiver, status: u16) {
        let mut store = lock(&self.store);
        store.count_answer(receiver, status);
    }

    pub(crate) fn count_oauth(&self, what: OAuthCount) {
        lock(&self.store).oauth[what as usize] += 1;
    }

    /// Decide, under one lock, which of the next `n` bulk items are rejected with 429.
    pub(crate) fn take_bulk_rejections(&self, n: usize) -> Vec<bool> {
        let mut faults = lock(&self.faults);
        (0..n).map(|_| faults.take_bulk_rejection()).collect()
    }

    /// The Elasticsearch document ids, locked for one bulk request.
    pub(crate) fn es_docs(&self) -> MutexGuard<'_, EsDocs> {
        lock(&self.es_docs)
    }

    /// Store items whose event id the receiver chose (`None`: from the body, as
    /// [`Sim::accept`]) and count the answer `status`, plus per-item statuses (bulk) and
    /// truncated logs (Datadog), under one lock.
    pub(crate) fn accept_items(
        &self,
        receiver: Receiver,
        path: &str,
        headers: &BTreeMap<String, String>,
        items: Vec<(Value, Option<String>)>,
        answer: Answer,
    ) {
        let request = self.request_info(path, headers);
        let keep = self.max_stored > 0;
        let n = items.len() as u64;
        let prepared: Vec<Prepared> = items
            .into_iter()
            .map(|(body, id)| Prepared::new(body, id, keep))
            .collect();
        let mut store = lock(&self.store);
        for event in prepared {
            store.push(&request, event);
        }
        store.count_answer(receiver, answer.status);
        let counters = store.receivers.entry(receiver).or_default();
        counters.events += n;
        counters.truncated += answer.truncated;
        for (status, count) in answer.item_statuses {
            *counters
                .items_by_status
                .entry(status.to_string())
                .or_default() += count;
        }
    }

    pub(crate) fn count_ack_query(&self) {
        lock(&self.store).ack_queries += 1;
    }

    pub(crate) fn count_channel_error(&self) {
        lock(&self.store).channel_errors += 1;
    }

    /// Hand out the next ack id of `channel`; it reads `true` once `delay` has passed, unless
    /// it falls in the `never_ack_percent` share (every 100 consecutive ids handed out hold
    /// exactly that many never-acked ones).
    pub(crate) fn issue_ack(&self, channel: &str, delay: Duration, never_ack_percent: u8) -> u64 {
        let mut store = lock(&self.store);
        let n = store.acks_issued;
        store.acks_issued += 1;
        let never = (n * 37) % 100 < u64::from(never_ack_percent);
        let entry = store.channels.entry(channel.to_owned()).or_default();
        let id = entry.next_id;
        entry.next_id += 1;
        entry.pending.insert(
            id,
            Pending {
                ready_at: Instant::now() + delay,
                never,
            },
        );
        id
    }

    /// Answer an ack query: `true` for ids of `channel` that are indexed (then forgotten, as
    /// Splunk does once it has reported them), `false` for the rest, unknown ids included.
    pub(crate) fn query_acks(&self, channel: &str, ids: &[u64]) -> BTreeMap<String, bool> {
        let now = Instant::now();
        let mut store = lock(&self.store);
        let mut acked = 0;
        let mut out = BTreeMap::new();
        for &id in ids {
            let done = store.channels.get_mut(channel).is_some_and(|c| {
                let ready = c
                    .pending
                    .get(&id)
                    .is_some_and(|p| !p.never && p.ready_at <= now);
                if ready {
                    c.pending.remove(&id);
                }
                ready
            });
            acked += u64::from(done);
            out.insert(id.to_string(), done);
        }
        store.acks_acked += acked;
        out
    }

    /// Store the events before a code 6 envelope without counting an answer (the caller
    /// counts the 400).
    pub(crate) fn accept_partial(
        &self,
        receiver: Receiver,
        path: &str,
        headers: &BTreeMap<String, String>,
        bodies: Vec<Value>,
    ) {
        drop(self.store_all(receiver, path, headers, bodies));
    }

    /// Store accepted events and count the 200 answer, under one lock so readers never see
    /// the events without the answer.
    pub(crate) fn accept(
        &self,
        receiver: Receiver,
        path: &str,
        headers: &BTreeMap<String, String>,
        bodies: Vec<Value>,
    ) {
        let mut store = self.store_all(receiver, path, headers, bodies);
        store.count_answer(receiver, 200);
    }

    /// Store `bodies` with one arrival time; returns the store still locked.
    fn store_all(
        &self,
        receiver: Receiver,
        path: &str,
        headers: &BTreeMap<String, String>,
        bodies: Vec<Value>,
    ) -> MutexGuard<'_, Store> {
        let request = self.request_info(path, headers);
        let keep = self.max_stored > 0;
        let n = bodies.len() as u64;
        let prepared: Vec<Prepared> = bodies
            .into_iter()
            .map(|body| Prepared::new(body, None, keep))
            .collect();
        let mut store = lock(&self.store);
        store.receivers.entry(receiver).or_default().events += n;
        for event in prepared {
            store.push(&request, event);
        }
        store
    }

    /// What the events of one request arriving now share.
    fn request_info(&self, path: &str, headers: &BTreeMap<String, String>) -> Arc<RequestInfo> {
        Arc::new(RequestInfo {
            received_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            path: path.to_owned(),
            headers: if self.max_stored > 0 {
                headers.clone()
            } else {
                BTreeMap::new()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_uuids_are_kept_as_bits_and_print_back_the_same() {
        for text in [
            "0f8e2c4a-1b3d-4e5f-8a9b-0c1d2e3f4a5b",
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
        ] {
            let id = Id::new(text.to_owned());
            assert!(matches!(id, Id::Uuid(_)), "{text}");
            assert_eq!(id.to_string(), text);
        }
        for text in [
            "0F8E2C4A-1B3D-4E5F-8A9B-0C1D2E3F4A5B",
            "0f8e2c4a1b3d4e5f8a9b0c1d2e3f4a5b",
            "0f8e2c4a-1b3d-4e5f-8a9b-0c1d2e3f4a5",
            "evt-1",
            "0f8e2c4a-1b3d-4e5f-8a9b-0c1d2e3f4a5g",
        ] {
            let id = Id::new(text.to_owned());
            assert!(matches!(id, Id::Text(_)), "{text}");
            assert_eq!(id.to_string(), text);
        }
    }

    fn sim(max_stored: usize) -> Sim {
        Sim::new(max_stored, Faults::default()).unwrap()
    }

    fn env(id: &str) -> Value {
        json!({"event": {"event_id": id, "org_id": "o1"}})
    }

    #[test]
    fn counts_duplicates_and_keeps_ids_beyond_the_record_cap() {
        let s = sim(2);
        let h = BTreeMap::new();
        s.accept(Receiver::Hec, "/p", &h, vec![env("a"), env("b"), env("a")]);
        s.accept(
            Receiver::Generic,
            "/generic",
            &h,
            vec![json!({"event_id": 7}), json!({"no": "id"})],
        );
        let stats = s.stats();
        assert_eq!(stats.events, 5);
        assert_eq!(stats.distinct_event_ids, 3);
        assert_eq!(stats.duplicates, 1);
        assert_eq!(stats.by_status["200"], 2);
        assert_eq!(stats.orgs["o1"], 3);
        assert_eq!(s.event_ids(), ["a", "b", "a", "7"]);
        assert_eq!(stats.receivers["hec"].events, 3);
        assert_eq!(stats.receivers["generic"].by_status["200"], 1);
        let kept = s.events(0, 100);
        assert_eq!(kept.iter().map(|r| r.seq).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(s.events(4, 100).len(), 1);
        assert_eq!(s.events(0, 1)[0].seq, 4);
    }

    #[test]
    fn orgs_are_bounded() {
        let s = sim(0);
        let bodies = (0..MAX_ORGS + 5)
            .map(|i| json!({"event": {"org_id": format!("org-{i}")}}))
            .collect();
        s.accept(Receiver::Hec, "/p", &BTreeMap::new(), bodies);
        let stats = s.stats();
        assert_eq!(stats.orgs.len(), MAX_ORGS + 1);
        assert_eq!(stats.orgs[OTHER_ORGS], 5);
        assert!(s.events(0, 10).is_empty());
    }

    #[test]
    fn reset_clears_everything() {
        let s = sim(10);
        s.accept(Receiver::Hec, "/p", &BTreeMap::new(), vec![env("a")]);
        s.set_faults(Faults::status(503)).unwrap();
        assert!(s.begin_request(Receiver::Hec).is_some());
        s.reset();
        assert_eq!(s.stats(), Stats::default());
        assert!(s.event_ids().is_empty());
        assert_eq!(s.faults(), Faults::default());
        s.accept(Receiver::Hec, "/p", &BTreeMap::new(), vec![env("a")]);
        assert_eq!(s.events(0, 10)[0].seq, 1);
    }
}
