//! The ingest API's OpenAPI 3.1 document (`GET /openapi.json`), generated from the route list
//! ([`crate::api::routes`]) and the answer types' schemas ([`crate::api::Accepted`],
//! [`crate::api::ErrorBody`]); [`operation`] adds each route's body and answers. A route
//! without an entry here fails the test below.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use els_api::openapi::{json_answer, text_answer, DocBuilder};
use serde_json::{json, Value};

use crate::api::{routes, Accepted, ErrorBody};

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

fn build() -> Value {
    let mut doc = DocBuilder::default();
    for (method, path, _) in routes() {
        let Some(mut op) = operation(&mut doc, method.as_str(), path) else {
            panic!("{method} {path} has no OpenAPI operation");
        };
        op["responses"]["default"] = doc.errors::<ErrorBody<'static>>();
        doc.operation(method.as_str(), path, op);
    }
    doc.finish(
        "ELS ingest API",
        "The producer's ingest API: execution events in, acknowledged by Kafka before 202.",
        env!("CARGO_PKG_VERSION"),
    )
}

fn operation(doc: &mut DocBuilder, method: &str, path: &str) -> Option<Value> {
    let op = match (method, path) {
        ("POST", "/v1/events") => {
            // Events are validated by the ingest parser (it names the bad field in a 400).
            let event = json!({"type": "object", "description": "an execution event (see the README for its fields)"});
            json!({
                "summary": "Ingest execution events: one, a JSON array, or NDJSON",
                "requestBody": {"required": true, "content": {
                    "application/json": {"schema": {"oneOf": [event, {"type": "array", "items": event}]}},
                    "application/x-ndjson": {"schema": {"type": "string"}}
                }},
                "responses": {"202": json_answer("every event acknowledged by Kafka", doc.schema::<Accepted>())}
            })
        }
        ("GET", "/healthz") => {
            json!({"summary": "Liveness", "responses": {"200": text_answer("live", "text/plain")}})
        }
        ("GET", "/readyz") => {
            json!({"summary": "Readiness (Kafka reachable, topic present)", "responses": {
            "200": text_answer("ready", "text/plain"),
            "503": text_answer("not ready", "text/plain")}})
        }
        ("GET", "/metrics") => {
            json!({"summary": "Prometheus metrics", "responses": {"200": text_answer("metrics", "text/plain")}})
        }
        ("GET", "/openapi.json") => {
            json!({"summary": "This document", "responses": {"200": json_answer("the OpenAPI document", json!({"type": "object"}))}})
        }
        _ => return None,
    };
    Some(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_covers_every_route() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        for (method, path, _) in routes() {
            let op = &doc["paths"][path][method.as_str().to_ascii_lowercase()];
            assert!(op["responses"]["default"].is_object(), "{method} {path}");
        }
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["Accepted"]["required"],
            json!(["accepted", "event_ids"])
        );
        assert!(
            schemas["IngestError"]["properties"]["message"].is_object(),
            "{schemas}"
        );
    }
}
