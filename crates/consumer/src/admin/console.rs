//! The settings console: the vendor's "Execution log streaming" page, served by the admin
//! server at `GET /console` for admins who expect a page rather than `elsctl`.
//!
//! The page is three static files embedded in the binary (`console/` beside this file: plain
//! HTML, CSS and JavaScript, no framework, nothing fetched from elsewhere, so it works without
//! any network but the admin API). The static files need no token; everything the page shows
//! comes from the admin API with the bearer token the admin typed into the page (kept in the
//! tab's `sessionStorage`, never in a URL):
//!
//! - `/v1/orgs`, `/v1/orgs/{org}/settings` ([`super::settings`]), `/v1/orgs/{org}/test`
//!   ([`super::test_event`]):
//!   the settings form, its field errors (the API's `field` path is mapped to the input) and
//!   "Send test event".
//! - `POST /v1/dead-letters/replay` ([`super::dead_letters`]) in chunks (`limit`), so the page
//!   can show progress and the count dropping.
//! - `GET /console/api/dead-letters?org=` (here): the org's dead letters counted by reason and
//!   the latest failure, without shipping every record (with its event) to the browser as
//!   `GET /v1/dead-letters` would.
//!
//! A strict Content-Security-Policy (scripts and styles from this origin only, no inline
//! script) backs up the page's rule of rendering every text with `textContent`.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use els_api::{DeadLetterSummary, DeadLetterV1, LatestFailure, OrgQuery};

use super::dead_letters::count_by_reason;
use super::{Admin, ApiError};
use crate::access::Principal;
use crate::state::record::truncate;
use crate::state::Filter;

/// The page; its asset paths and API calls are relative to `/console`.
pub const INDEX_HTML: &str = include_str!("console/index.html");
pub const SCRIPT: &str = include_str!("console/console.js");
pub const STYLE: &str = include_str!("console/console.css");

/// Only this origin's script, style and API; no inline script, no framing, no form posts.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Longest `last_error` excerpt in a summary (the full text is in `GET /v1/dead-letters/{id}`).
pub const MAX_LATEST_ERROR: usize = 300;

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        ],
        body,
    )
        .into_response()
}

pub async fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `/console/` -> the page; relative, so it also works behind a path prefix.
pub async fn to_page() -> Redirect {
    Redirect::permanent("../console")
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// Count `records` (all of one org) by reason and pick the latest failure.
pub fn summarize(org: &str, records: &[DeadLetterV1], total: usize) -> DeadLetterSummary {
    let latest = records
        .iter()
        .max_by_key(|r| (r.last_failed_at, r.id))
        .map(|r| LatestFailure {
            reason: r.reason,
            attempts: r.attempts,
            last_status: r.last_status,
            last_error: truncate(&r.last_error, MAX_LATEST_ERROR),
            last_failed_at: r.last_failed_at,
        });
    DeadLetterSummary {
        org: org.to_string(),
        count: records.len(),
        by_reason: count_by_reason(records),
        latest,
        total,
    }
}

/// `GET /console/api/dead-letters?org=`: the org's [`DeadLetterSummary`].
pub async fn dead_letters(
    State(admin): State<Arc<Admin>>,
    who: Principal,
    query: Result<Query<OrgQuery>, QueryRejection>,
) -> Result<Json<DeadLetterSummary>, ApiError> {
    let org = match query {
        Ok(Query(q)) if !q.org.trim().is_empty() => q.org,
        Ok(_) => return Err(ApiError::bad_request("org", "must not be empty")),
        Err(e) => return Err(ApiError::bad_request("org", e.body_text())),
    };
    let dead_letters = admin.dead_letters().await?;
    let filter = Filter {
        org: Some(org.clone()),
        ..Filter::default()
    };
    let records = dead_letters.list(&filter)?;
    let total = super::dead_letters::visible(dead_letters, &who)?;
    Ok(Json(summarize(&org, &records, total)))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, TOKEN};
    use super::*;
    use crate::settings::SettingsStore;
    use crate::state::StateStore;
    use chrono::{DateTime, Utc};
    use els_api::Reason;
    use serde_json::{json, Value};
    use std::collections::BTreeMap;

    fn record(org: &str, reason: Reason, minute: u32, error: &str) -> DeadLetterV1 {
        let at = DateTime::parse_from_rfc3339(&format!("2026-11-25T01:{minute:02}:00Z"))
            .unwrap()
            .with_timezone(&Utc);
        DeadLetterV1 {
            id: 0,
            org_id: org.into(),
            stream: "default".into(),
            event: json!({"event_id": "e"}),
            reason,
            attempts: 3,
            last_status: Some(503),
            last_error: error.into(),
            first_failed_at: at,
            last_failed_at: at,
            partition: 0,
            // Ids name the input offset: one offset per record.
            offset: minute.into(),
        }
    }

    #[test]
    fn summary_counts_by_reason_and_names_the_latest_failure() {
        let long = "x".repeat(1000);
        let records = [
            record("o", Reason::RetriesExhausted, 1, "busy"),
            record("o", Reason::Rejected, 3, &long),
            record("o", Reason::RetriesExhausted, 2, "busy"),
        ];
        let s = summarize("o", &records, 7);
        assert_eq!(s.count, 3);
        assert_eq!(s.total, 7);
        assert_eq!(
            s.by_reason,
            BTreeMap::from([(Reason::Rejected, 1), (Reason::RetriesExhausted, 2)])
        );
        let latest = s.latest.unwrap();
        assert_eq!(latest.reason, Reason::Rejected);
        assert!(latest.last_error.len() <= MAX_LATEST_ERROR + '…'.len_utf8());
        let empty = summarize("o", &[], 0);
        assert_eq!((empty.count, empty.latest), (0, None));
    }

    /// The page escapes by construction and loads nothing from elsewhere.
    #[test]
    fn assets_render_text_safely_and_stay_offline() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!SCRIPT.contains(sink), "console.js uses {sink}");
        }
        for asset in [INDEX_HTML, SCRIPT, STYLE] {
            for remote in [
                "src=\"http",
                "href=\"http",
                "src=\"//",
                "href=\"//",
                "url(http",
                "@import",
            ] {
                assert!(!asset.contains(remote), "an asset loads {remote}…");
            }
        }
        assert!(
            !SCRIPT.contains("localStorage"),
            "the token stays in sessionStorage"
        );
        assert!(
            !INDEX_HTML.contains("<script>"),
            "no inline script (the CSP forbids it)"
        );
        assert!(
            !INDEX_HTML.contains("style=\""),
            "no inline style (the CSP forbids it)"
        );
    }

    async fn serve(store: StateStore) -> String {
        testing::serve(testing::admin(SettingsStore::default(), store)).await
    }

    #[tokio::test]
    async fn page_is_public_and_the_summary_needs_the_token() {
        let dir = std::env::temp_dir().join(format!("els-console-{}", uuid::Uuid::new_v4()));
        let store = StateStore::open(&dir).unwrap();
        store
            .dead_letters()
            .put(vec![
                record("org-a", Reason::RetriesExhausted, 1, "busy"),
                record("org-a", Reason::Rejected, 2, "Invalid token"),
                record("org-b", Reason::Rejected, 3, "nope"),
            ])
            .await
            .unwrap();
        let base = serve(store).await;
        let client = reqwest::Client::new();

        let page = client.get(format!("{base}/console")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(page
            .text()
            .await
            .unwrap()
            .contains("Execution log streaming"));
        for (path, kind) in [
            ("console/console.js", "text/javascript"),
            ("console/console.css", "text/css"),
        ] {
            let r = client.get(format!("{base}/{path}")).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            assert!(r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind));
        }

        let url = format!("{base}/console/api/dead-letters?org=org-a");
        let r = client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let r = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["count"], 2);
        assert_eq!(body["total"], 3);
        assert_eq!(
            body["by_reason"],
            json!({"rejected": 1, "retries_exhausted": 1})
        );
        assert_eq!(body["latest"]["last_error"], "Invalid token");
        let r = client
            .get(format!("{base}/console/api/dead-letters"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
