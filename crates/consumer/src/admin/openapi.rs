//! The admin API's OpenAPI 3.1 document (`GET /openapi.json`), generated from the route table
//! ([`super::router::routes`]: every method, path, path parameter and who may call it, as
//! `security`) and the `els-api` types' schemas; [`operation`] adds what the table does not
//! say: each route's query, body and answer types. A route of the table without an entry here
//! fails the tests below (the console's page and assets are the only routes left out: they
//! are not API).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use els_api::openapi::{json_answer, path_params, text_answer, DocBuilder};
use els_api::*;
use serde_json::{json, Value};

use super::router::{routes, Access};

/// The document, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

pub async fn serve() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document().to_string(),
    )
        .into_response()
}

/// Whether the route is part of the API document (the console's page and assets are not).
pub fn documented(path: &str) -> bool {
    !path.starts_with("/console") || path.starts_with("/console/api/")
}

fn build() -> Value {
    let mut doc = DocBuilder::default();
    for route in routes() {
        if !documented(route.path) {
            continue;
        }
        let Some(mut op) = operation(&mut doc, route.method.as_str(), route.path) else {
            panic!("{} {} has no OpenAPI operation", route.method, route.path);
        };
        // Dead-letter ids are numbers; token ids and orgs are strings.
        let numbers: &[&str] = if route.path.starts_with("/v1/dead-letters") {
            &["id"]
        } else {
            &[]
        };
        let mut parameters = path_params(route.path, numbers);
        if let Some(Value::Array(query)) = op.get_mut("parameters").map(Value::take) {
            parameters.extend(query);
        }
        op["parameters"] = Value::Array(parameters);
        op["responses"]["default"] = doc.errors::<ErrorBody>();
        if route.access != Access::Public {
            op["security"] = json!([{"bearer": []}]);
            let who = match route.access {
                Access::Read => "any token, within its orgs",
                Access::Write => "a super_admin or org_admin token, within its orgs",
                _ => "a super_admin token",
            };
            let summary = op["summary"].as_str().unwrap_or("").to_string();
            op["description"] = json!(format!("{summary}. Who: {who}."));
        }
        doc.operation(route.method.as_str(), route.path, op);
    }
    doc.finish(
        "ELS admin API",
        "The consumer's admin API: dead letters, org stream settings, test events, tokens, \
         audit trail, probes and metrics. Errors are `{error, field, message}`.",
        env!("CARGO_PKG_VERSION"),
    )
}

/// Org settings: validated by the server (it names the bad field in a 400), so the document
/// leaves their fields to it; auth header values read back as `********`.
fn settings_schema() -> Value {
    json!({"type": "object", "description": "an org's stream settings (see the README); auth header values read back redacted"})
}

/// Summary, query, body and answers of each documented route.
fn operation(doc: &mut DocBuilder, method: &str, path: &str) -> Option<Value> {
    let ok = |what: &str, schema: Value| json!({"200": json_answer(what, schema)});
    let op = match (method, path) {
        ("GET", "/metrics") => {
            json!({"summary": "Prometheus metrics", "responses": {"200": text_answer("metrics", "text/plain")}})
        }
        ("GET", "/healthz") => json!({"summary": "Liveness", "responses": {
            "200": text_answer("live", "text/plain"),
            "503": json_answer("not live", doc.schema::<Liveness>())}}),
        ("GET", "/readyz") => {
            let r = doc.schema::<Readiness>();
            json!({"summary": "Readiness", "responses": {"200": json_answer("ready", r.clone()), "503": json_answer("not ready", r)}})
        }
        ("GET", "/openapi.json") => {
            json!({"summary": "This document", "responses": ok("the OpenAPI document", json!({"type": "object"}))})
        }
        ("GET", "/v1/dead-letters") => {
            json!({"summary": "List dead letters", "parameters": doc.query::<DeadLetterQuery>(), "responses": ok("matching dead letters", doc.schema::<DeadLetterList>())})
        }
        ("DELETE", "/v1/dead-letters") => {
            json!({"summary": "Purge matching dead letters", "parameters": doc.query::<DeadLetterQuery>(), "responses": ok("purged", doc.schema::<PurgeResult>())})
        }
        ("POST", "/v1/dead-letters/replay") => {
            let r = doc.schema::<ReplayResult>();
            json!({"summary": "Replay matching dead letters to the events topic",
                "requestBody": {"required": false, "content": {"application/json": {"schema": doc.schema::<DeadLetterQuery>()}}},
                "responses": {"200": json_answer("replayed", r.clone()), "502": json_answer("some failed", r)}})
        }
        ("GET", "/v1/dead-letters/{id}") => {
            json!({"summary": "Show a dead letter", "responses": ok("the record", doc.schema::<DeadLetterV1>())})
        }
        ("DELETE", "/v1/dead-letters/{id}") => {
            json!({"summary": "Purge a dead letter by id", "responses": ok("purged", doc.schema::<PurgeResult>())})
        }
        ("GET", "/v1/orgs") => {
            json!({"summary": "Orgs with settings", "responses": ok("org ids", doc.schema::<OrgList>())})
        }
        ("GET", "/v1/orgs/{org}/settings") => {
            json!({"summary": "An org's settings", "responses": ok("settings, redacted", settings_schema())})
        }
        ("PUT", "/v1/orgs/{org}/settings") => json!({"summary": "Store an org's settings",
            "requestBody": {"required": true, "content": {"application/json": {"schema": settings_schema()}}},
            "responses": ok("stored settings, redacted", settings_schema())}),
        ("DELETE", "/v1/orgs/{org}/settings") => {
            json!({"summary": "Delete an org's settings", "responses": ok("whether it had any", doc.schema::<SettingsDeleted>())})
        }
        ("POST", "/v1/orgs/{org}/test") => {
            json!({"summary": "Send a test event through the org's delivery path",
            // `TestEventRequest` has no fields yet: `{}` (or no body). Spelled as `maxProperties: 0`
            // rather than its derived `additionalProperties: false`, which (same meaning) made
            // schemathesis's coverage phase crash under CPython 3.11.7 (an `ast` recursion-depth
            // SystemError inside hypothesis), not a fault of this API.
            "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}}},
            "responses": ok("the SIEM's answer", doc.schema::<TestEventResult>())})
        }
        ("GET", "/v1/orgs/{org}/streams") => {
            json!({"summary": "An org's streams with their settings (redacted) and health", "responses": ok("the streams", doc.schema::<StreamList>())})
        }
        ("GET", "/v1/orgs/{org}/streams/{stream}") => {
            json!({"summary": "One stream's settings", "responses": ok("settings, redacted", settings_schema())})
        }
        ("PUT", "/v1/orgs/{org}/streams/{stream}") => {
            json!({"summary": "Store one stream's settings (a new stream past max_streams_per_org is 409)",
            "requestBody": {"required": true, "content": {"application/json": {"schema": settings_schema()}}},
            "responses": ok("stored settings, redacted", settings_schema())})
        }
        ("DELETE", "/v1/orgs/{org}/streams/{stream}") => {
            json!({"summary": "Delete one stream", "responses": ok("whether it existed", doc.schema::<SettingsDeleted>())})
        }
        ("POST", "/v1/orgs/{org}/streams/{stream}/test") => {
            json!({"summary": "Send a test event through one stream's delivery path",
            "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}}},
            "responses": ok("the SIEM's answer", doc.schema::<TestEventResult>())})
        }
        ("GET", "/v1/orgs/{org}/streams/{stream}/status") => {
            json!({"summary": "One stream's state", "responses": ok("the stream's health", doc.schema::<StreamStatus>())})
        }
        ("POST", "/v1/orgs/{org}/streams/{stream}/pause")
        | ("POST", "/v1/orgs/{org}/streams/{stream}/resume") => {
            let what = if path.ends_with("pause") {
                "Pause one stream (its events are held)"
            } else {
                "Resume one stream"
            };
            json!({"summary": what,
            "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}}},
            "responses": ok("the stream's health", doc.schema::<StreamStatus>())})
        }
        ("GET", "/v1/whoami") => {
            json!({"summary": "The calling token", "responses": ok("role, orgs, id, expiry", doc.schema::<WhoAmI>())})
        }
        ("GET", "/v1/tokens") => {
            json!({"summary": "List tokens", "responses": ok("every token, no secrets", doc.schema::<TokenList>())})
        }
        ("POST", "/v1/tokens") => json!({"summary": "Issue a token",
            "requestBody": {"required": true, "content": {"application/json": {"schema": doc.schema::<CreateToken>()}}},
            "responses": {"201": json_answer("the token and its secret, shown once", doc.schema::<CreatedToken>())}}),
        ("DELETE", "/v1/tokens/{id}") => {
            json!({"summary": "Revoke a token", "responses": ok("the revoked token", doc.schema::<TokenInfo>())})
        }
        ("GET", "/v1/audit") => {
            json!({"summary": "The audit trail, newest first", "parameters": doc.query::<AuditQuery>(), "responses": ok("entries", doc.schema::<AuditList>())})
        }
        ("GET", "/v1/status") => {
            json!({"summary": "Every org's stream state, paged by org id", "parameters": doc.query::<StatusQuery>(), "responses": ok("a page of streams and counts by state", doc.schema::<StatusList>())})
        }
        ("GET", "/v1/orgs/{org}/status") => {
            json!({"summary": "An org's stream state", "responses": ok("the stream's health", doc.schema::<StreamStatus>())})
        }
        ("POST", "/v1/orgs/{org}/pause") | ("POST", "/v1/orgs/{org}/resume") => {
            let what = if path.ends_with("pause") {
                "Pause an org's stream (its events are held)"
            } else {
                "Resume an org's stream"
            };
            json!({"summary": what,
            "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}}},
            "responses": ok("the stream's health", doc.schema::<StreamStatus>())})
        }
        ("GET", "/v1/orgs/{org}/stream-events") => {
            json!({"summary": "An org's recent stream state changes, oldest first", "parameters": doc.query::<NoticeQuery>(), "responses": ok("notices", doc.schema::<NoticeList>())})
        }
        ("GET", "/console/api/dead-letters") => {
            json!({"summary": "An org's dead letters counted by reason", "parameters": doc.query::<OrgQuery>(), "responses": ok("the summary", doc.schema::<DeadLetterSummary>())})
        }
        _ => return None,
    };
    Some(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_covers_the_route_table() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut documented_ops = 0;
        for route in routes() {
            let op = &doc["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
            if !documented(route.path) {
                assert!(op.is_null(), "{} {}", route.method, route.path);
                continue;
            }
            documented_ops += 1;
            assert!(op.is_object(), "{} {} missing", route.method, route.path);
            assert_eq!(
                op["security"].is_array(),
                route.access != Access::Public,
                "{}",
                route.path
            );
            assert!(op["responses"]["default"].is_object());
            for name in route.path.split('/').filter_map(|s| s.strip_prefix('{')) {
                let name = name.trim_end_matches('}');
                assert!(
                    op["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path"),
                    "{}",
                    route.path
                );
            }
        }
        let ops: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(ops, documented_ops);
        // Every $ref resolves.
        let text = doc.to_string();
        for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &r[..r.find('"').unwrap()];
            assert!(doc["components"]["schemas"][name].is_object(), "{name}");
        }
        assert_eq!(
            doc["components"]["schemas"]["Role"]["enum"],
            json!(["super_admin", "org_admin", "org_viewer"])
        );
    }
}
