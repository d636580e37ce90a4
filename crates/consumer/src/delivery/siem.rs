//! The SIEM client: sends a rendered body ([`super::request`]) to the org's endpoint with the
//! org's headers, through the SSRF guard ([`super::ssrf`]), and reads the answer with a cap.
//! [`send`] classifies the answer ([`super::retry::classify`]) and records request metrics.
//!
//! The engine reaches the network only through [`Deliver`], which [`SiemClient`] implements,
//! so its unit tests (`delivery/tests/`) answer from a fake SIEM with paused time.

use std::borrow::Cow;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::future::BoxFuture;

use els_model::settings::EndpointKind;

use uuid::Uuid;

use super::hec::CHANNEL_HEADER;
use super::oauth::{TokenCache, TokioClock};
use super::retry::{classify, Attempt, Verdict};
use super::ssrf::{find_refusal, GuardedResolver, Refused, SsrfPolicy};
use crate::metrics::Metrics;
use crate::settings::OrgRuntime;

/// Most response body bytes read from a SIEM...
pub const MAX_RESPONSE_BYTES: usize = 20 * 1024;
/// ...but from Elasticsearch, whose `_bulk` answer has an item per event and is read whole.
pub const MAX_BULK_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A SIEM's answer to one request, before classification.
#[derive(Debug)]
pub struct Exchange {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// At most [`MAX_RESPONSE_BYTES`] of the body, lossy UTF-8.
    pub body: String,
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The SSRF guard refused the destination: permanent.
    Refused(Refused),
    /// Connect error, timeout, reset...: transient.
    Network(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(r) => r.fmt(f),
            Failure::Network(text) => f.write_str(text),
        }
    }
}

/// The network side of a delivery: one request body to the org's endpoint, its answer not yet
/// classified. `channel` is the HEC data channel ([`super::hec::CHANNEL_HEADER`]), sent on HEC
/// requests. [`SiemClient`] in production; a fake SIEM in the engine's unit tests. The
/// future is boxed: one allocation per request (not per event), made once a request permit
/// is held, so thousands of orgs waiting for a permit stay small.
pub trait Deliver: Send + Sync {
    fn exchange<'a>(
        &'a self,
        runtime: &'a OrgRuntime,
        body: Bytes,
        channel: Uuid,
    ) -> BoxFuture<'a, Result<Exchange, Failure>>;

    /// Ask the org's HEC ack endpoint ([`super::hec::ack_url`]) about the ack ids in `body`
    /// (`{"acks":[..]}`) of `channel`.
    fn query_acks<'a>(
        &'a self,
        runtime: &'a OrgRuntime,
        body: Bytes,
        channel: Uuid,
    ) -> BoxFuture<'a, Result<Exchange, Failure>>;
}

impl Deliver for SiemClient {
    fn exchange<'a>(
        &'a self,
        runtime: &'a OrgRuntime,
        body: Bytes,
        channel: Uuid,
    ) -> BoxFuture<'a, Result<Exchange, Failure>> {
        Box::pin(SiemClient::exchange_on(self, runtime, body, channel))
    }

    fn query_acks<'a>(
        &'a self,
        runtime: &'a OrgRuntime,
        body: Bytes,
        channel: Uuid,
    ) -> BoxFuture<'a, Result<Exchange, Failure>> {
        Box::pin(async move {
            let url = super::hec::ack_url(&runtime.url).ok_or_else(|| {
                Failure::Network("the HEC URL has no /services/collector path to poll acks".into())
            })?;
            self.post(url, runtime, body, Some(channel), false).await
        })
    }
}

/// Send one request body through `deliver` and classify the answer; records the request's
/// duration and answer in `metrics`. A destination refused by the SSRF guard is a permanent
/// failure, a network error a transient one. `body` is `Bytes` so retries re-send it without
/// copying; `channel` is the org worker's HEC data channel.
pub async fn send(
    deliver: &dyn Deliver,
    metrics: &Metrics,
    runtime: &OrgRuntime,
    body: Bytes,
    channel: Uuid,
) -> Attempt {
    let endpoint = match runtime.settings.endpoint {
        EndpointKind::Hec => "hec",
        EndpointKind::Http => "http",
        EndpointKind::Elasticsearch => "elasticsearch",
        EndpointKind::Datadog => "datadog",
    };
    let started = Instant::now();
    let (attempt, label) = match deliver.exchange(runtime, body, channel).await {
        Ok(answer) => {
            let retry_after = answer
                .headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok());
            let attempt = Attempt {
                verdict: classify(answer.status, retry_after, SystemTime::now()),
                status: Some(answer.status),
                detail: answer.body,
            };
            (attempt, status_label(answer.status))
        }
        Err(Failure::Refused(refused)) => {
            let attempt = Attempt {
                verdict: Verdict::Permanent,
                status: None,
                detail: refused.to_string(),
            };
            (attempt, Cow::Borrowed("refused"))
        }
        Err(Failure::Network(detail)) => {
            let attempt = Attempt {
                verdict: Verdict::Retry,
                status: None,
                detail,
            };
            (attempt, Cow::Borrowed("error"))
        }
    };
    metrics
        .request_duration
        .with_label_values(&[endpoint])
        .observe(started.elapsed().as_secs_f64());
    metrics.siem_responses.with_label_values(&[&label]).inc();
    attempt
}

/// The `status` label of an answer: the common codes without an allocation.
fn status_label(status: u16) -> Cow<'static, str> {
    Cow::Borrowed(match status {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        408 => "408",
        413 => "413",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        other => return Cow::Owned(other.to_string()),
    })
}

/// Shared HTTP client towards SIEMs: no redirects, no proxies from the environment, TLS
/// verification on, a timeout on every request, and the SSRF guard on every destination
/// (a resolver filter for names, a check of IP literals before sending).
#[derive(Clone)]
pub struct SiemClient {
    client: reqwest::Client,
    gzip: bool,
    metrics: Metrics,
    /// The allow-list (`ssrf_allow`), shared with the client's resolver.
    ssrf: Arc<SsrfPolicy>,
    /// OAuth2 bearer tokens of streams with client credentials, fetched through this client.
    tokens: Arc<TokenCache>,
}

impl SiemClient {
    /// A client whose SSRF guard allows what `ssrf` lists besides public addresses.
    pub fn new(
        timeout: Duration,
        gzip: bool,
        ssrf: SsrfPolicy,
        metrics: Metrics,
    ) -> Result<Self, reqwest::Error> {
        let ssrf = Arc::new(ssrf);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver::new(ssrf.clone())))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("els-consumer/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let tokens =
            TokenCache::new(client.clone(), Arc::new(TokioClock)).with_ssrf_policy(ssrf.clone());
        Ok(Self {
            tokens: Arc::new(tokens),
            client,
            gzip,
            metrics,
            ssrf,
        })
    }

    /// Send one request body to the org's endpoint on a fresh HEC data channel (test events:
    /// one request, so the channel needs no stability); see [`SiemClient::exchange_on`].
    pub async fn exchange(&self, runtime: &OrgRuntime, body: Bytes) -> Result<Exchange, Failure> {
        self.exchange_on(runtime, body, super::hec::new_channel())
            .await
    }

    /// Send one request body to the org's endpoint with the org's headers, and on HEC the
    /// data channel `channel`: the one request path of deliveries and test events.
    pub async fn exchange_on(
        &self,
        runtime: &OrgRuntime,
        body: Bytes,
        channel: Uuid,
    ) -> Result<Exchange, Failure> {
        let hec = runtime.settings.endpoint == EndpointKind::Hec;
        self.post(
            runtime.url.clone(),
            runtime,
            body,
            hec.then_some(channel),
            self.gzip && hec,
        )
        .await
    }

    /// POST `body` to `url` with the org's headers (and the HEC data channel, gzip). With
    /// OAuth2 client credentials the bearer token comes from the cache; a 401 with a cached
    /// token drops it and sends once more with a fresh one. A token endpoint refusing the
    /// credentials answers as a `401` whose body says so (the stream pauses, as for a wrong
    /// token); one that is unreachable is a network failure (retried).
    async fn post(
        &self,
        url: reqwest::Url,
        runtime: &OrgRuntime,
        body: Bytes,
        channel: Option<Uuid>,
        gzip_body: bool,
    ) -> Result<Exchange, Failure> {
        self.ssrf.check_url(&url).map_err(Failure::Refused)?;
        let Some(oauth) = runtime.settings.oauth2.as_ref() else {
            return self
                .post_once(url, runtime, body, channel, gzip_body, None)
                .await;
        };
        let mut fresh_tried = false;
        loop {
            let token = match self.tokens.token(oauth).await {
                Ok(token) => token,
                Err(e) if e.is_configuration_error() => {
                    return Ok(Exchange {
                        status: 401,
                        headers: reqwest::header::HeaderMap::new(),
                        body: format!("OAuth2 token request refused: {e}"),
                    })
                }
                Err(e) => {
                    return Err(Failure::Network(format!(
                        "OAuth2 token endpoint unavailable: {e}"
                    )))
                }
            };
            let answer = self
                .post_once(
                    url.clone(),
                    runtime,
                    body.clone(),
                    channel,
                    gzip_body,
                    Some(token.header_value()),
                )
                .await?;
            if answer.status != 401 || fresh_tried {
                return Ok(answer);
            }
            // Expired early or revoked: once more with a new token.
            self.tokens.invalidate(oauth, &token);
            fresh_tried = true;
        }
    }

    async fn post_once(
        &self,
        url: reqwest::Url,
        runtime: &OrgRuntime,
        body: Bytes,
        channel: Option<Uuid>,
        gzip_body: bool,
        bearer: Option<reqwest::header::HeaderValue>,
    ) -> Result<Exchange, Failure> {
        // The request is built whole rather than through a builder: the stream's headers are
        // cloned in one piece instead of re-inserted one by one.
        let mut request = reqwest::Request::new(reqwest::Method::POST, url);
        let headers = request.headers_mut();
        *headers = runtime.headers.clone();
        if let Some(bearer) = bearer {
            headers.insert(reqwest::header::AUTHORIZATION, bearer);
        }
        if let Some(channel) = channel {
            let mut text = Uuid::encode_buffer();
            let text = channel.hyphenated().encode_lower(&mut text);
            if let Ok(value) = reqwest::header::HeaderValue::from_str(text) {
                headers.insert(CHANNEL_HEADER, value);
            }
        }
        let body = if gzip_body {
            headers.insert(
                reqwest::header::CONTENT_ENCODING,
                reqwest::header::HeaderValue::from_static("gzip"),
            );
            Bytes::from(gzip(&body))
        } else {
            body
        };
        *request.body_mut() = Some(body.into());
        match self.client.execute(request).await {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let headers = std::mem::take(response.headers_mut());
                let cap = match runtime.settings.endpoint {
                    EndpointKind::Elasticsearch => MAX_BULK_RESPONSE_BYTES,
                    _ => MAX_RESPONSE_BYTES,
                };
                let body = read_capped(response, cap).await;
                Ok(Exchange {
                    status,
                    headers,
                    body,
                })
            }
            Err(e) => Err(match find_refusal(&e) {
                Some(refused) => Failure::Refused(refused.clone()),
                None => Failure::Network(describe(&e)),
            }),
        }
    }

    /// Send one request body to the org's endpoint and classify the answer (see [`send`]).
    pub async fn send(&self, runtime: &OrgRuntime, body: Bytes) -> Attempt {
        send(
            self,
            &self.metrics,
            runtime,
            body,
            super::hec::new_channel(),
        )
        .await
    }
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = enc.write_all(body);
    enc.finish().unwrap_or_default()
}

/// Read at most `cap` bytes of the body as lossy UTF-8.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> String {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = cap - buf.len();
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= cap {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A network error without the URL's query (no secrets live there, but keep it short).
fn describe(e: &reqwest::Error) -> String {
    format!("{}: {e}{}", error_kind(e), error_sources(e))
}

/// What kind of failure a request error is: `timeout`, `connect error` or `request error`.
pub(super) fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else {
        "request error"
    }
}

/// The error's causes, each as `: cause`.
pub(super) fn error_sources(e: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use els_model::settings::OrgSettings;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A local server counting hits; answers with `status` and `location`.
    async fn server(status: u16, location: Option<String>) -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().fallback(move || {
            let counter = counter.clone();
            let location = location.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut response = axum::http::Response::builder().status(status);
                if let Some(l) = location {
                    response = response.header("location", l);
                }
                response.body(axum::body::Body::empty()).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), hits)
    }

    fn runtime(url: &str) -> OrgRuntime {
        let mut s = OrgSettings::hec(url, "t");
        s.allow_http = true;
        OrgRuntime::new(s).unwrap()
    }

    /// A client whose SSRF guard allows `allowed` (empty: strict).
    fn client(allowed: &[&str]) -> SiemClient {
        let allowed: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
        let policy = SsrfPolicy::parse(&allowed).unwrap();
        SiemClient::new(Duration::from_secs(5), false, policy, Metrics::new()).unwrap()
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed() {
        let (url, hits) = server(200, None).await;
        let strict = client(&[]);
        let attempt = strict.send(&runtime(&url), Bytes::from_static(b"{}")).await;
        assert_eq!(attempt.verdict, Verdict::Permanent);
        assert_eq!(attempt.status, None);
        assert_eq!(
            attempt.detail,
            "refused: 127.0.0.1 is a loopback address (not in ssrf_allow)"
        );
        // A name resolving to loopback is refused by the resolver, at connect time.
        let by_name = url.replace("127.0.0.1", "localhost");
        let attempt = strict
            .send(&runtime(&by_name), Bytes::from_static(b"{}"))
            .await;
        assert_eq!(attempt.verdict, Verdict::Permanent, "{}", attempt.detail);
        assert!(
            attempt
                .detail
                .starts_with("refused: localhost resolves to "),
            "{}",
            attempt.detail
        );
        assert_eq!(hits.load(Ordering::SeqCst), 0);

        let allowed = client(&["127.0.0.1"]);
        let attempt = allowed
            .send(&runtime(&url), Bytes::from_static(b"{}"))
            .await;
        assert_eq!(attempt.verdict, Verdict::Success);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn status_labels_are_the_codes() {
        for status in 100..600 {
            assert_eq!(status_label(status), status.to_string());
        }
    }

    #[tokio::test]
    async fn hec_requests_carry_the_channel_header() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
            let record = record.clone();
            async move {
                let channel = headers
                    .get(CHANNEL_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                // The stream's own headers go along.
                assert_eq!(headers["authorization"], "Splunk t");
                assert_eq!(headers["content-type"], "application/json");
                record.lock().unwrap().push(channel);
                "{}"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = client(&["127.0.0.1"]);
        let channel = Uuid::new_v4();
        for _ in 0..2 {
            let body = Bytes::from_static(b"{}");
            client
                .exchange_on(&runtime(&url), body, channel)
                .await
                .unwrap();
        }
        // A generic HTTP stream is not HEC: no channel.
        let mut http = OrgSettings::hec(&url, "t");
        http.allow_http = true;
        http.endpoint = EndpointKind::Http;
        let http = OrgRuntime::new(http).unwrap();
        let body = Bytes::from_static(b"{}");
        client.exchange_on(&http, body, channel).await.unwrap();
        let want = Some(channel.to_string());
        assert_eq!(*seen.lock().unwrap(), [want.clone(), want, None]);
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let (target, target_hits) = server(200, None).await;
        let (url, hits) = server(302, Some(format!("{target}/internal"))).await;
        let allowed = client(&["127.0.0.1"]);
        let attempt = allowed
            .send(&runtime(&url), Bytes::from_static(b"{}"))
            .await;
        assert_eq!(attempt.status, Some(302));
        assert_eq!(attempt.verdict, Verdict::Permanent);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(target_hits.load(Ordering::SeqCst), 0, "redirect followed");
    }
}
