//! Talking to an org's SIEM: rendering request bodies (HEC batches or one templated event)
//! and sending them with the org's headers. Response bodies are read with a cap.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use els_model::hec::write_envelope;
use els_model::privacy::{outbound_event, IdentityFields};
use els_model::settings::EndpointKind;
use els_model::ExecutionEvent;
use serde_json::Value;

use crate::metrics::Metrics;
use crate::retry::{classify, Attempt, Verdict};
use crate::settings::OrgRuntime;

/// Most response body bytes read from a SIEM.
pub const MAX_RESPONSE_BYTES: usize = 20 * 1024;

/// The object sent for `event` under `runtime`'s settings: hashed email, custom key/value
/// pairs (`${org_id}`/`${user_id}` resolved), then the body template.
pub fn render_event(event: &ExecutionEvent, runtime: &OrgRuntime) -> Value {
    let mut body = outbound_event(event, IdentityFields::default());
    if let Some(obj) = body.as_object_mut() {
        for field in &runtime.settings.custom_fields {
            let value = match field.value.as_str() {
                "${org_id}" => event.org_id.clone(),
                "${user_id}" => event.user_id.clone(),
                other => other.to_string(),
            };
            obj.insert(field.key.clone(), Value::String(value));
        }
    }
    match &runtime.template {
        Some(t) => t.render(body),
        None => body,
    }
}

/// The HEC body for a batch: one envelope per event.
pub fn hec_body(events: &[&ExecutionEvent], runtime: &OrgRuntime) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.len() * 700);
    for event in events {
        write_envelope(
            &mut out,
            event,
            &render_event(event, runtime),
            &runtime.settings.hec,
        );
    }
    out
}

/// Shared HTTP client towards SIEMs: no redirects, no proxies from the environment, TLS
/// verification on, a timeout on every request.
#[derive(Clone)]
pub struct Sink {
    client: reqwest::Client,
    gzip: bool,
    metrics: Metrics,
}

impl Sink {
    pub fn new(timeout: Duration, gzip: bool, metrics: Metrics) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("els-consumer/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            gzip,
            metrics,
        })
    }

    /// Send one request body to the org's endpoint and classify the answer.
    pub async fn send(&self, runtime: &OrgRuntime, body: Vec<u8>) -> Attempt {
        let settings = &runtime.settings;
        let endpoint = match settings.endpoint {
            EndpointKind::Hec => "hec",
            EndpointKind::Http => "http",
        };
        let mut request = self
            .client
            .post(&settings.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for h in &settings.custom_headers {
            request = request.header(h.name.as_str(), h.value.as_str());
        }
        for h in &settings.auth_headers {
            let mut value = match reqwest::header::HeaderValue::from_str(h.value.expose()) {
                Ok(v) => v,
                Err(_) => continue,
            };
            value.set_sensitive(true);
            request = request.header(h.name.as_str(), value);
        }
        let body = if self.gzip && settings.endpoint == EndpointKind::Hec {
            request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
            gzip(&body)
        } else {
            body
        };
        let started = Instant::now();
        let result = request.body(body).send().await;
        let attempt = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let text = read_capped(response).await;
                Attempt {
                    verdict: classify(status, retry_after.as_deref(), SystemTime::now()),
                    status: Some(status),
                    detail: text,
                }
            }
            Err(e) => Attempt {
                verdict: Verdict::Retry,
                status: None,
                detail: describe(&e),
            },
        };
        self.metrics
            .request_duration
            .with_label_values(&[endpoint])
            .observe(started.elapsed().as_secs_f64());
        let label = attempt
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "error".to_string());
        self.metrics
            .siem_responses
            .with_label_values(&[&label])
            .inc();
        attempt
    }
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = enc.write_all(body);
    enc.finish().unwrap_or_default()
}

/// Read at most [`MAX_RESPONSE_BYTES`] of the body as lossy UTF-8.
async fn read_capped(mut response: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_RESPONSE_BYTES - buf.len();
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= MAX_RESPONSE_BYTES {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A network error without the URL's query (no secrets live there, but keep it short).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else {
        "request error"
    };
    let mut text = format!("{kind}: {e}");
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
    use els_model::settings::{CustomField, OrgSettings};

    fn event() -> ExecutionEvent {
        els_model::ingest::parse_event(serde_json::json!({
            "event_type": "FLOW_COMPLETE", "execution_id": "0b6b1c9e-2f0a-4a49-8f51-7d1b7e3c9a10",
            "timestamp": "2026-11-25T01:02:03.456Z", "flow_id": "f1", "flow_name": "F",
            "org_id": "org-1", "org_name": "Acme", "org_hostname": "acme.example.com",
            "user_id": "u1", "user_email": "Bob@Example.com"
        }))
        .unwrap()
    }

    #[test]
    fn ids_only_when_asked_and_template_applied() {
        let mut s = OrgSettings::hec("https://siem.example.com/services/collector/event", "t");
        let plain = render_event(&event(), &OrgRuntime::new(s.clone()).unwrap());
        assert!(plain.get("org_id").is_none() && plain.get("user_id").is_none());
        assert_eq!(
            plain["user_email"],
            els_model::privacy::hash_email("bob@example.com")
        );
        s.custom_fields = vec![CustomField {
            key: "okta_org".into(),
            value: "${org_id}".into(),
        }];
        s.body_template = Some(r#"{"wrapper":{"e":"${event}"},"v":1}"#.into());
        let templated = render_event(&event(), &OrgRuntime::new(s).unwrap());
        assert_eq!(templated["v"], 1);
        assert_eq!(templated["wrapper"]["e"]["okta_org"], "org-1");
        let body = hec_body(
            &[&event(), &event()],
            &OrgRuntime::new(OrgSettings::hec("https://x/y", "t")).unwrap(),
        );
        assert_eq!(body.iter().filter(|b| **b == b'\n').count(), 2);
        assert!(!String::from_utf8(body).unwrap().contains("Example.com"));
    }
}
