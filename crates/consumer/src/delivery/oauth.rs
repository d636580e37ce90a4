//! OAuth2 client credentials (RFC 6749 §4.4) for streams with [`OAuth2`] settings, e.g.
//! Microsoft Entra ID in front of Microsoft Sentinel's Logs Ingestion API.
//!
//! Every request of such a stream carries `Authorization: Bearer <token>`. Fetching a token
//! per request would multiply the requests and hit the identity provider's throttling, so
//! [`TokenCache`] keeps one token per set of credentials and renews it shortly before it
//! expires (the refresh margin: 60 s, or 10 % of a short lifetime). Many workers may ask at
//! once when a token runs out; one fetch is made and the others wait for it (single flight).
//!
//! The cache key includes a SHA-256 of the client secret, so a changed secret fetches anew
//! without the secret itself being kept in the key. When the endpoint answers 401 with a
//! token, [`TokenCache::invalidate`] drops it and the caller re-sends once with a new one.
//!
//! Errors tell a configuration problem ([`TokenError::Rejected`], [`TokenError::Refused`]:
//! the stream should pause) from a transient one ([`TokenError::Unavailable`]: retried
//! with backoff). Neither the client secret nor a token ever appears in an error, a log
//! line or a `Debug` output.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, ACCEPT};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use els_model::settings::OAuth2;

use super::ssrf::{find_refusal, Refused, SsrfPolicy};

/// Longest refresh margin: a token is renewed at the latest this long before it expires.
pub const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Lifetime assumed when the token endpoint gives no (usable) `expires_in`.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// Longest lifetime believed, whatever `expires_in` says.
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Timeout of one token request.
pub const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Most credential sets cached; beyond it the least recently used are dropped.
pub const MAX_ENTRIES: usize = 10_000;
/// Entries unused for this long are dropped.
pub const IDLE_EXPIRY: Duration = Duration::from_secs(3600);
/// Most bytes of a token endpoint's answer read.
const MAX_REPLY_BYTES: usize = 64 * 1024;
/// Most bytes of the token endpoint's error text kept in a [`TokenError`].
const MAX_ERROR_TEXT: usize = 500;
/// How often idle entries are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Where [`TokenCache`] reads the time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// Tokio's clock: follows `tokio::time::pause()` in tests, the monotonic clock otherwise.
/// What production uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// An access token from the token endpoint. `Debug` prints `<redacted>`; the token leaves
/// only through [`BearerToken::header_value`].
#[derive(Clone)]
pub struct BearerToken {
    /// `Bearer <token>`, marked sensitive.
    header: HeaderValue,
    expires_at: Instant,
}

impl BearerToken {
    /// The `Authorization` header value, `Bearer <token>`, marked sensitive (hyper and
    /// reqwest keep it out of their logs and HTTP/2 header compression tables).
    pub fn header_value(&self) -> HeaderValue {
        self.header.clone()
    }

    /// When the token expires, by the endpoint's `expires_in` (counted from the request).
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    fn same_token(&self, other: &BearerToken) -> bool {
        self.header.as_bytes() == other.header.as_bytes()
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why no token could be had. Messages never contain the client secret or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token endpoint refused the credentials or the request (400 `invalid_client`,
    /// `unauthorized_client`, `invalid_scope`, 401, 403, 404...) or answered a token ELS
    /// cannot use: a configuration error, retrying cannot help.
    #[error("OAuth2 token endpoint refused the request (HTTP {status}): {error}")]
    Rejected { status: u16, error: String },
    /// The SSRF guard refused the token endpoint's address: a configuration error.
    #[error("OAuth2 token endpoint refused: {0}")]
    Refused(Refused),
    /// No usable answer: network error, timeout, 408, 429, 5xx, or an answer that does not
    /// parse. Transient: retry with backoff.
    #[error("OAuth2 token endpoint unavailable{}: {detail}", status_text(*.status))]
    Unavailable { status: Option<u16>, detail: String },
}

fn status_text(status: Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

impl TokenError {
    /// Whether the settings must change before a token can be had (pause the stream),
    /// rather than a transient failure (retry with backoff).
    pub fn is_configuration_error(&self) -> bool {
        matches!(self, TokenError::Rejected { .. } | TokenError::Refused(_))
    }
}

/// One set of credentials; the secret only as its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    token_url: String,
    client_id: String,
    scope: Option<String>,
    secret_sha256: [u8; 32],
}

impl Key {
    fn of(oauth: &OAuth2) -> Self {
        Self {
            token_url: oauth.token_url.clone(),
            client_id: oauth.client_id.clone(),
            scope: oauth.scope.clone(),
            secret_sha256: Sha256::digest(oauth.client_secret.expose().as_bytes()).into(),
        }
    }
}

/// A cached token and when to renew it.
#[derive(Clone)]
struct Cached {
    token: BearerToken,
    refresh_at: Instant,
}

/// The cache entry of one set of credentials.
struct Entry {
    /// The current token; a std mutex, held only to read or replace it.
    cached: Mutex<Option<Cached>>,
    /// Held while a fetch is in flight: later callers wait for it (single flight).
    fetch: tokio::sync::Mutex<()>,
    last_used: Mutex<Instant>,
}

struct Entries {
    map: HashMap<Key, Arc<Entry>>,
    last_prune: Instant,
}

/// Bearer tokens per set of client credentials, fetched on demand, renewed before they
/// expire. Share it in an `Arc`.
pub struct TokenCache {
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    ssrf: Option<Arc<SsrfPolicy>>,
    entries: Mutex<Entries>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache fetching through `client` (in production ELS's SSRF-guarded client, whose
    /// resolver refuses private addresses), reading the time from `clock` ([`TokioClock`]
    /// in production).
    pub fn new(client: reqwest::Client, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        Self {
            client,
            clock,
            ssrf: None,
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                last_prune: now,
            }),
        }
    }

    /// Also check token URLs whose host is an IP literal against `policy` before sending
    /// (the guarded client's resolver sees only names).
    pub fn with_ssrf_policy(mut self, policy: Arc<SsrfPolicy>) -> Self {
        self.ssrf = Some(policy);
        self
    }

    /// How many credential sets are cached.
    pub fn len(&self) -> usize {
        self.lock_entries().map.len()
    }

    /// Whether no credential set is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A token for `oauth`: the cached one while it has more than its refresh margin left,
    /// else a new one from `token_url` (one fetch at a time per set of credentials; callers
    /// arriving meanwhile get its result). When a renewal fails transiently but the cached
    /// token has not expired yet, the cached token is returned.
    pub async fn token(&self, oauth: &OAuth2) -> Result<BearerToken, TokenError> {
        let entry = self.entry(oauth);
        if let Some(token) = self.fresh(&entry) {
            return Ok(token);
        }
        let _flight = entry.fetch.lock().await;
        // A fetch that finished while we waited left a fresh token.
        if let Some(token) = self.fresh(&entry) {
            return Ok(token);
        }
        match self.fetch(oauth).await {
            Ok(cached) => {
                let token = cached.token.clone();
                *lock(&entry.cached) = Some(cached);
                Ok(token)
            }
            Err(TokenError::Unavailable { status, detail }) => {
                let now = self.clock.now();
                let still_valid = lock(&entry.cached)
                    .as_ref()
                    .filter(|c| c.token.expires_at > now)
                    .map(|c| c.token.clone());
                match still_valid {
                    Some(token) => {
                        tracing::debug!(
                            host = %host_of(&oauth.token_url),
                            %detail,
                            "OAuth2 token renewal failed; the current token is still valid"
                        );
                        Ok(token)
                    }
                    None => Err(TokenError::Unavailable { status, detail }),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The endpoint answered 401 to a request carrying `token`: drop it if it is still the
    /// cached one, so the next [`TokenCache::token`] fetches a new one. A token already
    /// replaced (another worker renewed it) is left alone.
    pub fn invalidate(&self, oauth: &OAuth2, token: &BearerToken) {
        let key = Key::of(oauth);
        let Some(entry) = self.lock_entries().map.get(&key).cloned() else {
            return;
        };
        let mut cached = lock(&entry.cached);
        if cached.as_ref().is_some_and(|c| c.token.same_token(token)) {
            *cached = None;
            tracing::debug!(host = %host_of(&oauth.token_url), "OAuth2 token invalidated");
        }
    }

    fn lock_entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        lock(&self.entries)
    }

    /// The entry of `oauth`'s credentials, created if new; prunes idle entries now and then.
    fn entry(&self, oauth: &OAuth2) -> Arc<Entry> {
        let now = self.clock.now();
        let key = Key::of(oauth);
        let mut entries = self.lock_entries();
        if let Some(entry) = entries.map.get(&key) {
            *lock(&entry.last_used) = now;
            return entry.clone();
        }
        if entries.map.len() >= MAX_ENTRIES
            || now.saturating_duration_since(entries.last_prune) >= PRUNE_EVERY
        {
            prune(&mut entries, now);
        }
        let entry = Arc::new(Entry {
            cached: Mutex::new(None),
            fetch: tokio::sync::Mutex::new(()),
            last_used: Mutex::new(now),
        });
        entries.map.insert(key, entry.clone());
        entry
    }

    /// The cached token if it is not due for renewal.
    fn fresh(&self, entry: &Entry) -> Option<BearerToken> {
        let now = self.clock.now();
        lock(&entry.cached)
            .as_ref()
            .filter(|c| now < c.refresh_at)
            .map(|c| c.token.clone())
    }

    /// One token request.
    async fn fetch(&self, oauth: &OAuth2) -> Result<Cached, TokenError> {
        let secret = oauth.client_secret.expose();
        let scrub = |text: &str| scrub(text, secret);
        let url = reqwest::Url::parse(&oauth.token_url).map_err(|e| TokenError::Rejected {
            status: 0,
            error: format!("token_url is not a URL: {e}"),
        })?;
        if let Some(policy) = &self.ssrf {
            policy.check_url(&url).map_err(TokenError::Refused)?;
        }
        let host = url.host_str().unwrap_or_default().to_string();
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "client_credentials"),
            ("client_id", &oauth.client_id),
            ("client_secret", secret),
        ];
        if let Some(scope) = &oauth.scope {
            form.push(("scope", scope));
        }
        let started = self.clock.now();
        let mut response = self
            .client
            .post(url)
            .header(ACCEPT, "application/json")
            .form(&form)
            .timeout(TOKEN_TIMEOUT)
            .send()
            .await
            .map_err(|e| network_error(&e, &host, &scrub))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_REPLY_BYTES - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() >= MAX_REPLY_BYTES {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(network_error(&e, &host, &scrub)),
            }
        }
        match status {
            200..=299 => {}
            408 | 429 | 500..=599 => {
                return Err(TokenError::Unavailable {
                    status: Some(status),
                    detail: format!("token endpoint {host}: {}", error_text(&body, &scrub)),
                })
            }
            _ => {
                return Err(TokenError::Rejected {
                    status,
                    error: error_text(&body, &scrub),
                })
            }
        }
        let reply: TokenReply =
            serde_json::from_slice(&body).map_err(|e| TokenError::Unavailable {
                status: Some(status),
                // serde_json's message names the position, not the text.
                detail: format!("token endpoint {host}: the answer is not a token reply: {e}"),
            })?;
        if let Some(kind) = &reply.token_type {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(TokenError::Rejected {
                    status,
                    error: format!(
                        "token_type `{}` is not supported (only Bearer)",
                        cap(&scrub(kind), 40)
                    ),
                });
            }
        }
        let header = HeaderValue::from_str(&format!("Bearer {}", reply.access_token))
            .ok()
            .filter(|_| !reply.access_token.is_empty());
        let Some(mut header) = header else {
            return Err(TokenError::Unavailable {
                status: Some(status),
                detail: format!(
                    "token endpoint {host}: access_token is empty or not a valid header value"
                ),
            });
        };
        header.set_sensitive(true);
        let lifetime = lifetime(reply.expires_in.as_ref());
        let expires_at = started + lifetime;
        let refresh_at = expires_at - refresh_margin(lifetime);
        tracing::debug!(
            %host,
            expires_in_s = lifetime.as_secs(),
            "OAuth2 token fetched"
        );
        Ok(Cached {
            token: BearerToken { header, expires_at },
            refresh_at,
        })
    }
}

/// The part of a token reply ELS reads.
#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    /// Seconds; a number (Entra) or a numeric string (some servers).
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// An OAuth2 error reply (RFC 6749 §5.2).
#[derive(Deserialize)]
struct ErrorReply {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The refresh margin of a token living `lifetime`: min(60 s, 10 %).
pub fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(MAX_REFRESH_MARGIN)
}

/// `expires_in` as a lifetime: a number or a numeric string of seconds, capped at
/// [`MAX_LIFETIME`]; missing or unusable means [`DEFAULT_LIFETIME`].
fn lifetime(expires_in: Option<&serde_json::Value>) -> Duration {
    let seconds = match expires_in {
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match seconds {
        Some(s) if s.is_finite() && s >= 0.0 => {
            Duration::from_secs_f64(s.min(MAX_LIFETIME.as_secs_f64()))
        }
        _ => DEFAULT_LIFETIME,
    }
}

/// The endpoint's error for a [`TokenError`]: `error: error_description` of an OAuth2 error
/// reply, else the body's text; scrubbed and capped.
fn error_text(body: &[u8], scrub: &dyn Fn(&str) -> String) -> String {
    let text = match serde_json::from_slice::<ErrorReply>(body) {
        Ok(ErrorReply {
            error,
            error_description: Some(description),
        }) => format!("{error}: {description}"),
        Ok(ErrorReply { error, .. }) => error,
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    };
    if text.is_empty() {
        return "(empty answer)".into();
    }
    cap(&scrub(&text), MAX_ERROR_TEXT)
}

/// A network error naming the host, with its causes, scrubbed; the SSRF guard's refusal
/// as [`TokenError::Refused`].
fn network_error(e: &reqwest::Error, host: &str, scrub: &dyn Fn(&str) -> String) -> TokenError {
    if let Some(refused) = find_refusal(e) {
        return TokenError::Refused(refused.clone());
    }
    let text = format!(
        "token endpoint {host}: {}{}",
        super::siem::error_kind(e),
        super::siem::error_sources(e)
    );
    TokenError::Unavailable {
        status: None,
        detail: cap(&scrub(&text), MAX_ERROR_TEXT),
    }
}

/// `text` with every occurrence of the secret (as is and form-encoded) replaced.
fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    text.replace(secret, "<redacted>")
        .replace(&encoded, "<redacted>")
}

/// At most `max` bytes of `text`, cut at a character boundary, `…` marking a cut.
fn cap(text: &str, max: usize) -> String {
    crate::state::record::truncate(text, max)
}

/// The token URL's host, for logs.
fn host_of(token_url: &str) -> String {
    reqwest::Url::parse(token_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

/// Drop entries idle for [`IDLE_EXPIRY`]; if still full, the least recently used.
fn prune(entries: &mut Entries, now: Instant) {
    entries.last_prune = now;
    entries
        .map
        .retain(|_, e| now.saturating_duration_since(*lock(&e.last_used)) < IDLE_EXPIRY);
    while entries.map.len() >= MAX_ENTRIES {
        let oldest = entries
            .map
            .iter()
            .min_by_key(|(_, e)| *lock(&e.last_used))
            .map(|(k, _)| k.clone());
        match oldest {
            Some(key) => entries.map.remove(&key),
            None => break,
        };
    }
}

/// Lock a std mutex; a panic while it was held leaves data that is still consistent here
/// (every critical section is a single read or assignment).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use els_model::settings::Secret;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const SECRET: &str = "canary-secret&a=b+c d%";
    const TOKEN_PREFIX: &str = "canary-token-";

    /// A clock tests move by hand.
    struct ManualClock {
        base: Instant,
        offset: Mutex<Duration>,
    }

    impl ManualClock {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                base: Instant::now(),
                offset: Mutex::new(Duration::ZERO),
            })
        }

        fn advance(&self, by: Duration) {
            *self.offset.lock().unwrap() += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            self.base + *self.offset.lock().unwrap()
        }
    }

    /// What the token server answers.
    #[derive(Clone)]
    enum Answer {
        /// `{"access_token": "canary-token-<n>", "expires_in": <value>}` (value verbatim JSON).
        Token {
            expires_in: &'static str,
        },
        Status(u16, &'static str),
    }

    /// The form fields of one token request, in order.
    type Form = Vec<(String, String)>;

    struct Server {
        url: String,
        hits: Arc<AtomicUsize>,
        forms: Arc<Mutex<Vec<Form>>>,
        answer: Arc<Mutex<Answer>>,
    }

    /// A local token server; each answer takes `delay`.
    async fn server(answer: Answer, delay: Duration) -> Server {
        let hits = Arc::new(AtomicUsize::new(0));
        let forms = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(answer));
        let (h, f, a) = (hits.clone(), forms.clone(), answer.clone());
        let app = axum::Router::new().fallback(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (h, f, a) = (h.clone(), f.clone(), a.clone());
                async move {
                    let n = h.fetch_add(1, Ordering::SeqCst) + 1;
                    assert_eq!(
                        headers["content-type"],
                        "application/x-www-form-urlencoded"
                    );
                    let form = url::form_urlencoded::parse(&body).into_owned().collect();
                    f.lock().unwrap().push(form);
                    tokio::time::sleep(delay).await;
                    let answer = a.lock().unwrap().clone();
                    let (status, body) = match answer {
                        Answer::Token { expires_in } => (
                            200,
                            format!(
                                r#"{{"token_type":"Bearer","expires_in":{expires_in},"ext_expires_in":3599,"access_token":"{TOKEN_PREFIX}{n}"}}"#
                            ),
                        ),
                        Answer::Status(status, body) => (status, body.to_string()),
                    };
                    axum::http::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(axum::body::Body::from(body))
                        .unwrap()
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Server {
            url: format!("http://{addr}/tenant/oauth2/v2.0/token"),
            hits,
            forms,
            answer,
        }
    }

    fn oauth(url: &str, secret: &str) -> OAuth2 {
        OAuth2 {
            token_url: url.into(),
            client_id: "client-1".into(),
            client_secret: Secret::new(secret),
            scope: Some("https://monitor.azure.com//.default".into()),
        }
    }

    fn header(token: &BearerToken) -> String {
        token.header_value().to_str().unwrap().to_string()
    }

    fn cache(clock: Arc<ManualClock>) -> TokenCache {
        TokenCache::new(reqwest::Client::new(), clock)
    }

    #[tokio::test]
    async fn caches_and_sends_an_encoded_form() {
        let s = server(Answer::Token { expires_in: "3599" }, Duration::ZERO).await;
        let cache = cache(ManualClock::new());
        let o = oauth(&s.url, SECRET);
        let first = cache.token(&o).await.unwrap();
        assert_eq!(header(&first), format!("Bearer {TOKEN_PREFIX}1"));
        assert!(first.header_value().is_sensitive());
        let second = cache.token(&o).await.unwrap();
        assert_eq!(header(&second), header(&first));
        assert_eq!(
            s.hits.load(Ordering::SeqCst),
            1,
            "the second call is cached"
        );

        let forms = s.forms.lock().unwrap();
        let form: HashMap<_, _> = forms[0].iter().cloned().collect();
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(form["client_id"], "client-1");
        assert_eq!(
            form["client_secret"], SECRET,
            "&, =, +, space and % survive"
        );
        assert_eq!(form["scope"], "https://monitor.azure.com//.default");
        assert_eq!(form.len(), 4);
    }

    #[tokio::test]
    async fn no_scope_no_scope_field() {
        let s = server(Answer::Token { expires_in: "60" }, Duration::ZERO).await;
        let cache = cache(ManualClock::new());
        let mut o = oauth(&s.url, SECRET);
        o.scope = None;
        cache.token(&o).await.unwrap();
        let forms = s.forms.lock().unwrap();
        assert!(forms[0].iter().all(|(k, _)| k != "scope"));
    }

    #[tokio::test]
    async fn renews_a_30s_token_3s_before_expiry() {
        let s = server(Answer::Token { expires_in: "30" }, Duration::ZERO).await;
        let clock = ManualClock::new();
        let cache = cache(clock.clone());
        let o = oauth(&s.url, SECRET);
        let first = cache.token(&o).await.unwrap();
        assert_eq!(first.expires_at(), clock.now() + Duration::from_secs(30));
        clock.advance(Duration::from_millis(26_900));
        assert_eq!(header(&cache.token(&o).await.unwrap()), header(&first));
        assert_eq!(s.hits.load(Ordering::SeqCst), 1);
        clock.advance(Duration::from_millis(200)); // 27.1 s: within the 3 s margin
        let renewed = cache.token(&o).await.unwrap();
        assert_eq!(header(&renewed), format!("Bearer {TOKEN_PREFIX}2"));
        assert_eq!(s.hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn long_tokens_renew_60s_before_expiry_and_expires_in_is_lenient() {
        assert_eq!(
            refresh_margin(Duration::from_secs(3599)),
            MAX_REFRESH_MARGIN
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(30)),
            Duration::from_secs(3)
        );
        let n = |v: &str| lifetime(Some(&serde_json::from_str(v).unwrap()));
        assert_eq!(n("3599"), Duration::from_secs(3599));
        assert_eq!(n(r#""3599""#), Duration::from_secs(3599));
        assert_eq!(n(r#"" 120 ""#), Duration::from_secs(120));
        assert_eq!(n("1.5"), Duration::from_millis(1500));
        assert_eq!(n(r#""soon""#), DEFAULT_LIFETIME);
        assert_eq!(n("-5"), DEFAULT_LIFETIME);
        assert_eq!(n("null"), DEFAULT_LIFETIME);
        assert_eq!(n("1e30"), MAX_LIFETIME);
        assert_eq!(lifetime(None), DEFAULT_LIFETIME);

        // A string expires_in through the server; a missing one is an hour.
        let s = server(
            Answer::Token {
                expires_in: r#""100""#,
            },
            Duration::ZERO,
        )
        .await;
        let clock = ManualClock::new();
        let cache = cache(clock.clone());
        let t = cache.token(&oauth(&s.url, SECRET)).await.unwrap();
        assert_eq!(t.expires_at(), clock.now() + Duration::from_secs(100));
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let s = server(
            Answer::Token { expires_in: "3599" },
            Duration::from_millis(200),
        )
        .await;
        let cache = Arc::new(cache(ManualClock::new()));
        let o = oauth(&s.url, SECRET);
        let calls = (0..10).map(|_| {
            let (cache, o) = (cache.clone(), o.clone());
            tokio::spawn(async move { cache.token(&o).await })
        });
        let tokens = futures::future::join_all(calls).await;
        for t in tokens {
            assert_eq!(
                header(&t.unwrap().unwrap()),
                format!("Bearer {TOKEN_PREFIX}1")
            );
        }
        assert_eq!(s.hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn invalidate_fetches_anew_but_not_for_a_replaced_token() {
        let s = server(Answer::Token { expires_in: "3599" }, Duration::ZERO).await;
        let cache = cache(ManualClock::new());
        let o = oauth(&s.url, SECRET);
        let first = cache.token(&o).await.unwrap();
        cache.invalidate(&o, &first);
        let second = cache.token(&o).await.unwrap();
        assert_eq!(header(&second), format!("Bearer {TOKEN_PREFIX}2"));
        // A late 401 for the old token leaves the new one alone.
        cache.invalidate(&o, &first);
        assert_eq!(header(&cache.token(&o).await.unwrap()), header(&second));
        assert_eq!(s.hits.load(Ordering::SeqCst), 2);
        // Unknown credentials: nothing to do.
        cache.invalidate(&oauth(&s.url, "other"), &second);
    }

    #[tokio::test]
    async fn a_changed_secret_fetches_anew() {
        let s = server(Answer::Token { expires_in: "3599" }, Duration::ZERO).await;
        let cache = cache(ManualClock::new());
        cache.token(&oauth(&s.url, SECRET)).await.unwrap();
        let t = cache.token(&oauth(&s.url, "rotated")).await.unwrap();
        assert_eq!(header(&t), format!("Bearer {TOKEN_PREFIX}2"));
        assert_eq!(s.forms.lock().unwrap()[1][2].1, "rotated");
        assert_eq!(cache.len(), 2);
    }

    #[tokio::test]
    async fn invalid_client_is_a_configuration_error_without_the_secret() {
        // Entra's answer, echoing (as a careless server might) the secret.
        let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided: canary-secret&a=b+c d%. Trace ID: 1"}"#;
        let s = server(Answer::Status(401, body), Duration::ZERO).await;
        let cache = cache(ManualClock::new());
        let e = cache.token(&oauth(&s.url, SECRET)).await.unwrap_err();
        assert!(e.is_configuration_error(), "{e}");
        let TokenError::Rejected { status, error } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*status, 401);
        assert!(
            error.starts_with("invalid_client: AADSTS7000215"),
            "{error}"
        );
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains("canary-secret"), "{text}");
            assert!(text.contains("<redacted>"), "{text}");
        }

        // 400 invalid_scope, and a form-encoded echo of the secret.
        let encoded: String = url::form_urlencoded::byte_serialize(SECRET.as_bytes()).collect();
        let echo: &'static str = format!("bad request client_secret={encoded}").leak();
        *s.answer.lock().unwrap() = Answer::Status(400, echo);
        let e = cache.token(&oauth(&s.url, SECRET)).await.unwrap_err();
        assert!(e.is_configuration_error());
        assert!(!e.to_string().contains("canary"), "{e}");
    }

    #[tokio::test]
    async fn unavailable_answers_are_transient() {
        let s = server(Answer::Status(503, "busy"), Duration::ZERO).await;
        let clock = ManualClock::new();
        let cache = cache(clock.clone());
        let o = oauth(&s.url, SECRET);
        let e = cache.token(&o).await.unwrap_err();
        assert!(!e.is_configuration_error());
        assert_eq!(
            e,
            TokenError::Unavailable {
                status: Some(503),
                detail: "token endpoint 127.0.0.1: busy".into()
            }
        );
        *s.answer.lock().unwrap() = Answer::Status(429, "");
        assert!(matches!(
            cache.token(&o).await,
            Err(TokenError::Unavailable {
                status: Some(429),
                ..
            })
        ));
        *s.answer.lock().unwrap() = Answer::Status(200, "<html>not json</html>");
        let e = cache.token(&o).await.unwrap_err();
        assert!(
            matches!(
                e,
                TokenError::Unavailable {
                    status: Some(200),
                    ..
                }
            ),
            "{e}"
        );

        // A renewal failing while the token is still valid keeps the token.
        *s.answer.lock().unwrap() = Answer::Token { expires_in: "100" };
        let t = cache.token(&o).await.unwrap();
        *s.answer.lock().unwrap() = Answer::Status(503, "busy");
        clock.advance(Duration::from_secs(95));
        assert_eq!(header(&cache.token(&o).await.unwrap()), header(&t));
        clock.advance(Duration::from_secs(5));
        assert!(cache.token(&o).await.is_err(), "expired: no token");
    }

    #[tokio::test]
    async fn network_errors_are_transient() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        drop(listener);
        let e = cache(ManualClock::new())
            .token(&oauth(&url, SECRET))
            .await
            .unwrap_err();
        let TokenError::Unavailable {
            status: None,
            detail,
        } = &e
        else {
            panic!("{e:?}")
        };
        assert!(
            detail.starts_with("token endpoint 127.0.0.1: connect error"),
            "{detail}"
        );
    }

    #[tokio::test]
    async fn the_ssrf_policy_refuses_ip_literals() {
        let s = server(Answer::Token { expires_in: "60" }, Duration::ZERO).await;
        let cache =
            cache(ManualClock::new()).with_ssrf_policy(Arc::new(SsrfPolicy::parse(&[]).unwrap()));
        let e = cache.token(&oauth(&s.url, SECRET)).await.unwrap_err();
        assert!(matches!(e, TokenError::Refused(_)), "{e:?}");
        assert!(e.is_configuration_error());
        assert_eq!(s.hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn other_token_types_are_refused() {
        let s = server(
            Answer::Status(
                200,
                r#"{"access_token":"canary-token-x","token_type":"mac"}"#,
            ),
            Duration::ZERO,
        )
        .await;
        let e = cache(ManualClock::new())
            .token(&oauth(&s.url, SECRET))
            .await
            .unwrap_err();
        assert!(e.is_configuration_error(), "{e}");
        assert!(!format!("{e}{e:?}").contains("canary-token"));
    }

    #[test]
    fn debug_shows_no_token_or_secret() {
        let mut header = HeaderValue::from_static("Bearer canary-token-1");
        header.set_sensitive(true);
        let token = BearerToken {
            header,
            expires_at: Instant::now(),
        };
        assert_eq!(format!("{token:?}"), "<redacted>");
        let o = oauth("https://login.example/token", SECRET);
        assert!(!format!("{o:?}").contains("canary"));
        assert_eq!(
            scrub("a canary-secret&a=b+c d% b", SECRET),
            "a <redacted> b"
        );
        assert_eq!(cap("ééé", 3), "é…");
    }

    #[test]
    fn idle_entries_are_pruned() {
        let clock = ManualClock::new();
        let cache = cache(clock.clone());
        cache.entry(&oauth("https://a.example/token", SECRET));
        clock.advance(IDLE_EXPIRY);
        cache.entry(&oauth("https://b.example/token", SECRET));
        assert_eq!(cache.len(), 1, "a was idle for an hour");
    }
}
