//! `elsctl test-event --org X`: the consumer sends a sample event through the org's real
//! delivery path (headers, template, hashing) and reports the SIEM's answer; this module shows
//! it and says in one line what a failure most likely means.

use els_api::{TestEventRequest, TestEventResult};

use crate::client::{self, AdminClient, DEFAULT_TIMEOUT, NO_QUERY};
use crate::error::Error;
use crate::output::{self, Format};
use crate::{Io, Outcome};

/// HEC's code and text as one phrase, when the SIEM answered like HEC.
fn hec(result: &TestEventResult) -> Option<String> {
    let code = result.hec_code?;
    Some(match result.hec_text.as_deref() {
        Some(text) => format!("HEC code {code} \"{}\"", output::one_line(text)),
        None => format!("HEC code {code}"),
    })
}

pub async fn run(
    org: &str,
    client: &AdminClient,
    format: Format,
    io: &mut Io<'_>,
) -> Result<Outcome, Error> {
    let value = client
        .send(
            reqwest::Method::POST,
            &["v1", "orgs", org, "test"],
            NO_QUERY,
            Some(&TestEventRequest {}),
            DEFAULT_TIMEOUT,
        )
        .await?
        .into_json()?;
    let result: TestEventResult = client::view(&value, "/v1/orgs/{org}/test")?;
    let text = match format {
        Format::Json => output::pretty(&value),
        Format::Table => render(&result),
    };
    io.out.write_all(text.as_bytes())?;
    Ok(if result.is_success() {
        Outcome::Success
    } else {
        Outcome::Failure
    })
}

pub fn render(result: &TestEventResult) -> String {
    let mut text = String::new();
    match result.status {
        Some(status) => {
            text.push_str(&format!("status: {status}"));
            if let Some(code) = result.hec_code {
                let hec_text = result.hec_text.as_deref().unwrap_or("");
                text.push_str(&format!(
                    " (HEC code {code}: {})",
                    output::one_line(hec_text)
                ));
            }
            text.push('\n');
        }
        None => text.push_str("status: no response\n"),
    }
    text.push_str(&format!("latency: {} ms\n", result.latency_ms));
    if let Some(line) = indexer_ack(result) {
        text.push_str(&line);
        text.push('\n');
    }
    if let Some(error) = result.error.as_deref().filter(|e| !e.is_empty()) {
        text.push_str(&format!("error: {}\n", output::one_line(error)));
    }
    if !result.headers.is_empty() {
        text.push_str("headers:\n");
        for (name, value) in &result.headers {
            text.push_str(&format!(
                "  {}: {}\n",
                output::one_line(name),
                output::one_line(value)
            ));
        }
    }
    if result.status.is_some() {
        match result.body.trim() {
            "" => text.push_str("body: (empty)\n"),
            body if !body.contains('\n') => {
                text.push_str(&format!("body: {}\n", output::visible(body)));
            }
            body => {
                text.push_str("body:\n");
                for line in output::visible(body).lines() {
                    text.push_str(&format!("  {line}\n"));
                }
            }
        }
    }
    if let Some(explanation) = explain(result) {
        text.push_str(&explanation);
        text.push('\n');
    }
    text
}

/// Whether the HEC token needs indexer acks, for a HEC `200`.
fn indexer_ack(result: &TestEventResult) -> Option<String> {
    if !result.is_success() || result.hec_code.is_none() {
        return None;
    }
    Some(match result.hec_ack_id {
        Some(id) => format!(
            "indexer acknowledgement: on (ackId {id}) — the token needs acks: ELS counts events \
             delivered once /services/collector/ack confirms them (hec.ack auto or true)"
        ),
        None => "indexer acknowledgement: off for this token — a 200 means delivered".to_string(),
    })
}

/// What a failed test most likely means, in one line; `None` for a 2xx.
pub fn explain(result: &TestEventResult) -> Option<String> {
    let hec = hec(result);
    let with_hec = |status: u16| match &hec {
        Some(h) => format!("{status}, {h}"),
        None => status.to_string(),
    };
    let Some(status) = result.status else {
        return Some(
            "the SIEM could not be reached — check the org's URL and that the SIEM accepts \
             connections from ELS"
                .to_string(),
        );
    };
    Some(match status {
        200..=299 => return None,
        401 | 403 => match &hec {
            Some(h) => format!(
                "the SIEM rejected the credentials: {h} — check the org's Authorization header"
            ),
            None => format!(
                "the SIEM rejected the credentials ({status}) — check the org's Authorization header"
            ),
        },
        404 => "the SIEM has no such endpoint (404) — check the path in the org's URL \
                (Splunk HEC: /services/collector/event)"
            .to_string(),
        300..=399 => format!(
            "the SIEM answered with a redirect ({status}) — ELS does not follow redirects; \
             use the final URL"
        ),
        408 | 429 | 500 | 502..=599 => format!(
            "the SIEM is busy or failing ({}) — ELS retries these, so events would be delayed, \
             not lost",
            with_hec(status)
        ),
        _ => format!(
            "the SIEM refused the event ({}) — check the org's body template and HEC options; \
             ELS would dead-letter such events with reason `rejected`",
            with_hec(status)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: Option<u16>, hec: Option<(i64, &str)>) -> TestEventResult {
        TestEventResult {
            status,
            hec_code: hec.map(|h| h.0),
            hec_text: hec.map(|h| h.1.to_string()),
            ..TestEventResult::default()
        }
    }

    #[test]
    fn success_renders_status_with_hec_and_no_explanation() {
        let mut r = result(Some(200), Some((0, "Success")));
        r.latency_ms = 42;
        r.headers
            .insert("content-type".into(), "application/json".into());
        r.body = r#"{"text":"Success","code":0}"#.into();
        assert!(r.is_success());
        assert_eq!(
            render(&r),
            "status: 200 (HEC code 0: Success)\nlatency: 42 ms\nindexer acknowledgement: off for this token — a 200 means delivered\nheaders:\n  content-type: application/json\nbody: {\"text\":\"Success\",\"code\":0}\n"
        );
    }

    #[test]
    fn an_ack_id_says_the_token_needs_acks() {
        let mut r = result(Some(200), Some((0, "Success")));
        r.hec_ack_id = Some(7);
        assert!(render(&r).contains("indexer acknowledgement: on (ackId 7) — the token needs acks"));
        let http = result(Some(200), None);
        assert!(!render(&http).contains("indexer acknowledgement"));
    }

    #[test]
    fn auth_failures_point_at_the_authorization_header() {
        let r = result(Some(403), Some((4, "Invalid token")));
        assert!(!r.is_success());
        assert_eq!(
            explain(&r).as_deref(),
            Some("the SIEM rejected the credentials: HEC code 4 \"Invalid token\" — check the org's Authorization header")
        );
        let r = result(Some(401), None);
        assert_eq!(
            explain(&r).as_deref(),
            Some("the SIEM rejected the credentials (401) — check the org's Authorization header")
        );
    }

    #[test]
    fn other_failures_are_explained() {
        assert!(explain(&result(Some(404), None))
            .unwrap_or_default()
            .contains("path"));
        assert!(explain(&result(Some(503), Some((9, "Server is busy"))))
            .unwrap_or_default()
            .contains("503, HEC code 9 \"Server is busy\""));
        assert!(
            explain(&result(Some(400), Some((6, "Invalid data format"))))
                .unwrap_or_default()
                .contains("body template")
        );
        assert!(explain(&result(Some(501), None))
            .unwrap_or_default()
            .contains("rejected"));
        assert!(explain(&result(Some(302), None))
            .unwrap_or_default()
            .contains("redirect"));
    }

    #[test]
    fn network_errors_show_the_error_text() {
        let mut r = result(None, None);
        r.error = Some("dns error: no such host siem.invalid".into());
        r.latency_ms = 3;
        let text = render(&r);
        assert!(
            text.starts_with(
                "status: no response\nlatency: 3 ms\nerror: dns error: no such host siem.invalid\n"
            ),
            "{text}"
        );
        assert!(text.contains("could not be reached"));
        assert!(!text.contains("body:"));
    }

    #[test]
    fn bodies_are_made_terminal_safe() {
        let mut r = result(Some(500), None);
        r.body = "line one\n\u{1b}[2Jline two".into();
        let text = render(&r);
        assert!(
            text.contains("body:\n  line one\n  \\u{1b}[2Jline two\n"),
            "{text}"
        );
        let mut r = result(Some(204), None);
        r.body = String::new();
        assert!(render(&r).contains("body: (empty)"));
    }
}
