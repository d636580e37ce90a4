//! OAuth2 client credentials grant (RFC 6749 §4.4) as Microsoft Entra ID answers it, which is
//! how a sender gets the bearer token the Azure Monitor Logs Ingestion API (Microsoft
//! Sentinel) requires.
//!
//! References: RFC 6749 <https://www.rfc-editor.org/rfc/rfc6749>, and Microsoft identity
//! platform, "OAuth 2.0 client credentials flow"
//! <https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow>.
//!
//! Pure and unit-tested: parsing the token request (form body, client credentials in the body
//! or in HTTP Basic, RFC 6749 §2.3.1), the success and error bodies (§5.1, §5.2, with the
//! extra fields Entra adds), and the store of issued tokens with their expiry. Secrets and
//! tokens never appear in `Debug` output or error texts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{json, Value};

/// Default lifetime of an access token, as Entra's usual `expires_in` of an hour.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 3600;

/// A configured client (`client_id`, `client_secret`).
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl std::str::FromStr for Client {
    type Err = String;

    /// `id:secret`, as the `--oauth-client` flag takes it.
    fn from_str(value: &str) -> Result<Self, String> {
        match value.split_once(':') {
            Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok(Client {
                id: id.to_owned(),
                secret: secret.to_owned(),
            }),
            _ => Err("expected CLIENT_ID:CLIENT_SECRET".to_owned()),
        }
    }
}

/// RFC 6749 §5.2 error codes used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// A required parameter is missing or repeated, or the body is not a form (400).
    InvalidRequest(&'static str),
    /// Unknown client or wrong secret (401).
    InvalidClient,
    /// `grant_type` is not `client_credentials` (400).
    UnsupportedGrantType,
    /// Entra: a client credentials `scope` must be `<resource>/.default` (400).
    InvalidScope,
}

impl TokenError {
    pub fn status(self) -> u16 {
        match self {
            TokenError::InvalidClient => 401,
            _ => 400,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            TokenError::InvalidRequest(_) => "invalid_request",
            TokenError::InvalidClient => "invalid_client",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::InvalidScope => "invalid_scope",
        }
    }

    /// The §5.2 body with Entra's `error_description` (an `AADSTS` code first) and
    /// `error_codes`.
    pub fn body(self, timestamp: &str) -> Value {
        let (aadsts, description) = match self {
            TokenError::InvalidRequest(what) => (900144, what.to_owned()),
            TokenError::InvalidClient => (
                7000215,
                "Invalid client secret provided, or the client is unknown.".to_owned(),
            ),
            TokenError::UnsupportedGrantType => (
                70003,
                "The app requested an unsupported grant type; only 'client_credentials' is \
                 supported here."
                    .to_owned(),
            ),
            TokenError::InvalidScope => (
                1002012,
                "The provided value for scope is not valid. Client credential flows must have a \
                 scope value with /.default suffixed to the resource identifier."
                    .to_owned(),
            ),
        };
        json!({
            "error": self.code(),
            "error_description": format!("AADSTS{aadsts}: {description}"),
            "error_codes": [aadsts],
            "timestamp": timestamp,
        })
    }
}

/// Which token endpoint was called: v2 (`/oauth2/v2.0/token`, `scope` required) or v1
/// (`/oauth2/token`, `resource` instead of `scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    V1,
    V2,
}

/// Check a token request. `body` is the `application/x-www-form-urlencoded` body and `basic`
/// the `Authorization` header value, if any. Returns the authenticated client id.
pub fn authenticate(
    body: &[u8],
    basic: Option<&str>,
    endpoint: Endpoint,
    clients: &[Client],
) -> Result<String, TokenError> {
    let form = parse_form(body).ok_or(TokenError::InvalidRequest(
        "The request body must be an application/x-www-form-urlencoded form.",
    ))?;
    let one = |name: &str| -> Result<Option<&str>, TokenError> {
        let mut values = form.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
        let first = values.next().map(String::as_str);
        if values.next().is_some() {
            // RFC 6749 §3.2: request parameters must not be included more than once.
            return Err(TokenError::InvalidRequest("A parameter is repeated."));
        }
        Ok(first)
    };
    let grant_type = one("grant_type")?.ok_or(TokenError::InvalidRequest(
        "The request body must contain the following parameter: 'grant_type'.",
    ))?;
    if grant_type != "client_credentials" {
        return Err(TokenError::UnsupportedGrantType);
    }
    let from_header = match basic {
        Some(value) => Some(parse_basic(value).ok_or(TokenError::InvalidClient)?),
        None => None,
    };
    let (id, secret) = match (from_header, one("client_id")?, one("client_secret")?) {
        // §2.3.1: a client must not use more than one authentication method per request.
        (Some(_), _, Some(_)) => {
            return Err(TokenError::InvalidRequest(
                "Client credentials were sent both in the Authorization header and the body.",
            ))
        }
        (Some((id, secret)), _, None) => (id, secret),
        (None, Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
        (None, None, _) => {
            return Err(TokenError::InvalidRequest(
                "The request body must contain the following parameter: 'client_id'.",
            ))
        }
        (None, Some(_), None) => {
            return Err(TokenError::InvalidRequest(
                "The request body must contain the following parameter: 'client_assertion' or \
                 'client_secret'.",
            ))
        }
    };
    if endpoint == Endpoint::V2 {
        let scope = one("scope")?.ok_or(TokenError::InvalidRequest(
            "The request body must contain the following parameter: 'scope'.",
        ))?;
        if !scope.split(' ').all(|s| s.ends_with("/.default")) {
            return Err(TokenError::InvalidScope);
        }
    }
    if !clients.iter().any(|c| c.id == id && c.secret == secret) {
        return Err(TokenError::InvalidClient);
    }
    Ok(id)
}

/// The §5.1 success body as Entra answers it.
pub fn token_body(access_token: &str, ttl: Duration) -> Value {
    let secs = ttl.as_secs();
    json!({
        "token_type": "Bearer",
        "expires_in": secs,
        "ext_expires_in": secs,
        "access_token": access_token,
    })
}

/// Decode an `application/x-www-form-urlencoded` body (`+` is a space, `%XX` a byte);
/// `None` if it is not UTF-8 or has a bad escape.
pub fn parse_form(body: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// `Basic base64(id:secret)`; RFC 6749 §2.3.1 form-encodes id and secret before base64.
pub fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((percent_decode(id)?, percent_decode(secret)?))
}

/// Standard base64 (RFC 4648 §4, padding optional; the URL-safe alphabet is accepted too).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return None;
    }
    Some(out)
}

/// What an access token presented on a protected endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    Valid,
    Expired,
    Unknown,
}

/// Issued access tokens and when they expire. Expired tokens are remembered (so a late use
/// answers "expired" rather than "unknown") until 10 times their lifetime has passed.
#[derive(Default)]
pub struct TokenStore {
    tokens: HashMap<String, Instant>,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl TokenStore {
    /// A fresh random token valid for `ttl` from `now`.
    pub fn issue(&mut self, now: Instant, ttl: Duration) -> String {
        let forget_after = ttl.saturating_mul(10).max(Duration::from_secs(60));
        self.tokens
            .retain(|_, expires| now.saturating_duration_since(*expires) < forget_after);
        let bytes: [u8; 32] = rand::thread_rng().gen();
        let token = format!("sim.{}", hex_lower(&bytes));
        self.tokens.insert(token.clone(), now + ttl);
        token
    }

    pub fn check(&self, token: &str, now: Instant) -> TokenCheck {
        match self.tokens.get(token) {
            Some(expires) if now < *expires => TokenCheck::Valid,
            Some(_) => TokenCheck::Expired,
            None => TokenCheck::Unknown,
        }
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `WWW-Authenticate` value of a 401 for a bad bearer token (RFC 6750 §3).
pub fn invalid_token_challenge(check: TokenCheck) -> &'static str {
    match check {
        TokenCheck::Expired => {
            "Bearer error=\"invalid_token\", error_description=\"The access token expired\""
        }
        _ => "Bearer error=\"invalid_token\", error_description=\"The access token is invalid\"",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clients() -> Vec<Client> {
        vec!["app:s3cret".parse().unwrap()]
    }

    const SCOPE: &str = "scope=https%3A%2F%2Fmonitor.azure.com%2F.default";

    #[test]
    fn client_flag_parses_and_hides_the_secret() {
        let c: Client = "id:a:b".parse().unwrap();
        assert_eq!((c.id.as_str(), c.secret.as_str()), ("id", "a:b"));
        assert!(!format!("{c:?}").contains("a:b"));
        assert!("nosecret".parse::<Client>().is_err());
        assert!(":x".parse::<Client>().is_err());
    }

    #[test]
    fn credentials_in_the_body() {
        let body =
            format!("grant_type=client_credentials&client_id=app&client_secret=s3cret&{SCOPE}");
        assert_eq!(
            authenticate(body.as_bytes(), None, Endpoint::V2, &clients()),
            Ok("app".to_owned())
        );
        let wrong = body.replace("s3cret", "nope");
        assert_eq!(
            authenticate(wrong.as_bytes(), None, Endpoint::V2, &clients()),
            Err(TokenError::InvalidClient)
        );
    }

    #[test]
    fn credentials_in_basic_auth() {
        // base64("app:s3cret")
        let basic = "Basic YXBwOnMzY3JldA==";
        let body = format!("grant_type=client_credentials&{SCOPE}");
        assert_eq!(
            authenticate(body.as_bytes(), Some(basic), Endpoint::V2, &clients()),
            Ok("app".to_owned())
        );
        let both = format!("{body}&client_secret=s3cret");
        assert!(matches!(
            authenticate(both.as_bytes(), Some(basic), Endpoint::V2, &clients()),
            Err(TokenError::InvalidRequest(_))
        ));
        assert_eq!(
            authenticate(body.as_bytes(), Some("Basic !!"), Endpoint::V2, &clients()),
            Err(TokenError::InvalidClient)
        );
    }

    #[test]
    fn request_errors() {
        let check =
            |body: &str, endpoint| authenticate(body.as_bytes(), None, endpoint, &clients());
        assert_eq!(
            check(
                "grant_type=password&client_id=app&client_secret=s3cret",
                Endpoint::V2
            ),
            Err(TokenError::UnsupportedGrantType)
        );
        assert!(matches!(
            check("client_id=app", Endpoint::V2),
            Err(TokenError::InvalidRequest(_))
        ));
        assert!(matches!(
            check(
                "grant_type=client_credentials&client_id=app&client_secret=s3cret",
                Endpoint::V2
            ),
            Err(TokenError::InvalidRequest(_))
        ));
        assert_eq!(
            check(
                "grant_type=client_credentials&client_id=app&client_secret=s3cret&scope=foo",
                Endpoint::V2
            ),
            Err(TokenError::InvalidScope)
        );
        // v1 takes `resource` and needs no scope.
        assert_eq!(
            check(
                "grant_type=client_credentials&client_id=app&client_secret=s3cret&resource=x",
                Endpoint::V1
            ),
            Ok("app".to_owned())
        );
        assert!(matches!(
            check(
                "grant_type=client_credentials&grant_type=client_credentials",
                Endpoint::V1
            ),
            Err(TokenError::InvalidRequest(_))
        ));
        assert!(matches!(
            check("grant_type=%ZZ", Endpoint::V1),
            Err(TokenError::InvalidRequest(_))
        ));
    }

    #[test]
    fn error_bodies_follow_rfc_6749() {
        let body = TokenError::InvalidClient.body("t");
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(TokenError::InvalidClient.status(), 401);
        assert_eq!(TokenError::UnsupportedGrantType.status(), 400);
        assert!(body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215"));
        let ok = token_body("tok", Duration::from_secs(30));
        assert_eq!(ok["token_type"], "Bearer");
        assert_eq!(ok["expires_in"], 30);
    }

    #[test]
    fn form_and_base64_decoding() {
        assert_eq!(
            parse_form(b"a=1+2&b=%2F&c").unwrap(),
            [
                ("a".to_owned(), "1 2".to_owned()),
                ("b".to_owned(), "/".to_owned()),
                ("c".to_owned(), String::new())
            ]
        );
        assert_eq!(base64_decode("aGk").unwrap(), b"hi");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("a*b").is_none());
    }

    #[test]
    fn tokens_expire() {
        let mut store = TokenStore::default();
        let now = Instant::now();
        let token = store.issue(now, Duration::from_secs(30));
        assert!(token.len() > 60);
        assert_eq!(store.check(&token, now), TokenCheck::Valid);
        assert_eq!(
            store.check(&token, now + Duration::from_secs(30)),
            TokenCheck::Expired
        );
        assert_eq!(store.check("other", now), TokenCheck::Unknown);
        assert_ne!(store.issue(now, Duration::from_secs(30)), token);
        assert!(!format!("{store:?}").contains(&token));
    }
}
