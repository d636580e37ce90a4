//! HTTP to the consumer's admin API: one `reqwest` client with the bearer token as a sensitive
//! default header, URLs built segment by segment under `--admin-url` (so org ids are escaped
//! and a path prefix behind a proxy works), answers read with a size cap, and transport
//! failures mapped to [`Error`] variants that decide the exit code.

use std::error::Error as _;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{ApiError, Error};

/// Most requests: listing even a large store answers well within this.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Replay re-publishes every match to Kafka at `--rate` per second before answering.
pub const REPLAY_TIMEOUT: Duration = Duration::from_secs(600);
/// A consumer that is up accepts connections at once; fail fast when it is not.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read; a `dlq list` without `--limit` on a huge store stops here.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// No query string: [`AdminClient::send`]'s `query` for routes without filters.
pub const NO_QUERY: &[(&str, &str)] = &[];
/// No request body: [`AdminClient::send`]'s `body` for routes that take none.
pub const NO_BODY: Option<&()> = None;

/// The admin bearer token. `Debug` never shows it, there is no `Display`, and it only leaves
/// the process in the `Authorization` header (marked sensitive).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    fn header(&self) -> Result<HeaderValue, Error> {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.0)).map_err(|_| {
            Error::Usage(
                "the admin token contains characters not allowed in an HTTP header".to_string(),
            )
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl FromStr for Token {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A URL as shown to the operator: any password in it replaced.
pub fn shown(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("<redacted>"));
    }
    url.to_string()
}

/// A status and body from the admin API, not yet judged.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// The endpoint, for error messages.
    pub url: String,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON when the status is 2xx, else the API's error.
    pub fn into_json(self) -> Result<Value, Error> {
        if !self.is_success() {
            return Err(Error::Api(ApiError::from_answer(self.status, &self.body)));
        }
        self.parse()
    }

    /// The body as `T`, whatever the status. serde_json's nesting limit (128) is lifted: a
    /// dead letter may hold an event as deep as ingest allows, and the answer wraps it in a
    /// few more levels; the depth stays bounded by what the consumer sends.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let unexpected = |e: serde_json::Error| Error::Unexpected {
            url: self.url.clone(),
            detail: format!("not the expected JSON ({e})"),
        };
        let mut de = serde_json::Deserializer::from_slice(&self.body);
        de.disable_recursion_limit();
        let value = T::deserialize(&mut de).map_err(unexpected)?;
        de.end().map_err(unexpected)?;
        Ok(value)
    }
}

/// Parse a JSON value already fetched into a typed view of it.
pub fn view<T: DeserializeOwned>(value: &Value, url: &str) -> Result<T, Error> {
    T::deserialize(value).map_err(|e| Error::Unexpected {
        url: url.to_string(),
        detail: format!("not the expected JSON ({e})"),
    })
}

/// The admin API client.
pub struct AdminClient {
    http: reqwest::Client,
    base: Url,
}

impl fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminClient")
            .field("base", &shown(&self.base))
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    pub fn new(base: &Url, token: Option<&Token>) -> Result<Self, Error> {
        let mut headers = HeaderMap::new();
        if let Some(token) = token.filter(|t| !t.0.is_empty()) {
            headers.insert(AUTHORIZATION, token.header()?);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(DEFAULT_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirect could carry the token elsewhere; the admin API never redirects.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("elsctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Usage(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: base.clone(),
        })
    }

    /// `base` + escaped path segments; the base's own path is kept as a prefix.
    pub fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// One request: `query` as the query string (absent fields left out, none at all without
    /// a `?`), `body` as JSON; any status is an [`Answer`], only transport failures are errors.
    pub async fn send<Q, B>(
        &self,
        method: Method,
        segments: &[&str],
        query: &Q,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<Answer, Error>
    where
        Q: Serialize + ?Sized,
        B: Serialize + ?Sized,
    {
        let url = self.endpoint(segments);
        let mut request = self
            .http
            .request(method, url.clone())
            .timeout(timeout)
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| self.transport(e, &url, timeout))?;
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport(e, &url, timeout))?
        {
            if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(Error::Unexpected {
                    url: shown(&url),
                    detail: format!(
                        "answer larger than {} MiB; narrow the filters or use --limit",
                        MAX_BODY_BYTES / (1024 * 1024)
                    ),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            body: bytes,
            url: shown(&url),
        })
    }

    /// GET with the default timeout, JSON on 2xx, the API's error otherwise.
    pub async fn get<Q: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        query: &Q,
    ) -> Result<Value, Error> {
        self.send(Method::GET, segments, query, NO_BODY, DEFAULT_TIMEOUT)
            .await?
            .into_json()
    }

    fn transport(&self, e: reqwest::Error, url: &Url, timeout: Duration) -> Error {
        if e.is_connect() {
            Error::Connect {
                url: shown(&self.base),
                detail: chain(&e),
            }
        } else if e.is_timeout() {
            Error::Timeout {
                url: shown(url),
                secs: timeout.as_secs(),
            }
        } else {
            Error::Transport {
                url: shown(url),
                detail: chain(&e),
            }
        }
    }
}

/// The causes of a transport error, outermost first, without reqwest's own
/// "error sending request for url (...)" wrapper and without repeats.
fn chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        // hyper-util's wrapper says nothing the inner cause does not.
        let noise = text.starts_with("client error (");
        if !noise && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {

    #[test]
    fn answers_deeper_than_serde_json_s_default_limit_parse() {
        let deep = format!("{}1{}", "[".repeat(140), "]".repeat(140));
        let answer = Answer {
            status: 200,
            url: "http://x/v1/dead-letters".into(),
            body: format!(r#"{{"items":[{{"event":{deep}}}]}}"#).into_bytes(),
        };
        let value = answer.into_json().expect("deep answer");
        assert!(value["items"][0]["event"].is_array());
    }
    use super::*;

    fn client(base: &str) -> AdminClient {
        let url = Url::parse(base).expect("test url");
        AdminClient::new(&url, Some(&Token::new("t0p-secret"))).expect("client")
    }

    #[test]
    fn endpoints_escape_segments_and_keep_a_path_prefix() {
        let c = client("http://127.0.0.1:9090");
        assert_eq!(
            c.endpoint(&["v1", "dead-letters"]).as_str(),
            "http://127.0.0.1:9090/v1/dead-letters"
        );
        assert_eq!(
            c.endpoint(&["v1", "orgs", "a/b c", "settings"]).as_str(),
            "http://127.0.0.1:9090/v1/orgs/a%2Fb%20c/settings"
        );
        let c = client("https://ops.example/els/?x=1");
        assert_eq!(
            c.endpoint(&["v1", "orgs"]).as_str(),
            "https://ops.example/els/v1/orgs"
        );
    }

    #[test]
    fn token_is_redacted_in_debug_and_header_is_sensitive() {
        let token = Token::new("t0p-secret");
        assert!(!format!("{token:?}").contains("t0p-secret"));
        let header = token.header().expect("header");
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("t0p-secret"));
        assert!(!format!("{:?}", client("http://127.0.0.1:1")).contains("t0p-secret"));
    }

    #[test]
    fn token_with_newline_is_a_usage_error_that_does_not_echo_it() {
        let err = Token::new("abc\ndef").header().expect_err("invalid header");
        assert!(!err.to_string().contains("abc"));
        assert_eq!(err.exit_code(), crate::error::exit::USAGE);
    }

    #[test]
    fn passwords_in_urls_are_not_shown() {
        let url = Url::parse("http://admin:hunter2@host:9090/").expect("url");
        assert!(!shown(&url).contains("hunter2"));
    }

    #[test]
    fn non_success_answers_become_api_errors() {
        let answer = Answer {
            status: 403,
            body: br#"{"error":"Forbidden","field":null,"message":"the admin API is disabled: set ELS_ADMIN_TOKEN"}"#.to_vec(),
            url: "http://x/v1/dead-letters".into(),
        };
        let err = answer.into_json().expect_err("403");
        assert_eq!(
            err.to_string(),
            "403 Forbidden: the admin API is disabled: set ELS_ADMIN_TOKEN"
        );
    }

    #[test]
    fn success_with_garbage_is_unexpected() {
        let answer = Answer {
            status: 200,
            body: b"<html>".to_vec(),
            url: "http://x/v1/orgs".into(),
        };
        let err = answer.into_json().expect_err("garbage");
        assert!(err
            .to_string()
            .starts_with("unexpected answer from http://x/v1/orgs"));
    }
}
