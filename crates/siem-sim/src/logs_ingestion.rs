//! Azure Monitor Logs Ingestion API (what Microsoft Sentinel ingests custom logs with),
//! `POST /dataCollectionRules/{dcrImmutableId}/streams/{streamName}?api-version=2023-01-01`,
//! pure and unit-tested.
//!
//! Reference: <https://learn.microsoft.com/en-us/azure/azure-monitor/logs/logs-ingestion-api-overview>.
//!
//! As the API reference documents it: the body is a JSON array of records matching the
//! stream's columns (gzip accepted), at most 1 MB per call (413 beyond); the caller presents
//! a bearer token from Microsoft Entra ID (client credentials, see [`crate::oauth`]);
//! success is 204 No Content; errors are `{"error":{"code":..,"message":..}}`. The
//! `api-version` query parameter is required, as Azure requires it.

use serde_json::{json, Value};

/// Largest body, compressed or not: 1 MB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Azure's error body.
pub fn error_body(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

/// The body of an injected whole-request fault.
pub fn fault_body(status: u16) -> Value {
    match status {
        429 => error_body(
            "TooManyRequests",
            "Rate limit exceeded; retry after a while.",
        ),
        503 => error_body("ServiceUnavailable", "The service is unavailable."),
        _ => error_body("InternalServerError", "Simulated failure."),
    }
}

/// The `api-version` query parameter, required.
pub fn check_api_version(query: Option<&str>) -> Result<(), Value> {
    let present = query.is_some_and(|q| {
        q.split('&')
            .filter_map(|p| p.split_once('='))
            .any(|(k, v)| k.eq_ignore_ascii_case("api-version") && !v.is_empty())
    });
    if present {
        Ok(())
    } else {
        Err(error_body(
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ))
    }
}

/// Parse the records: a JSON array of objects.
pub fn parse_records(body: &[u8]) -> Result<Vec<Value>, Value> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        error_body(
            "InvalidRequestBody",
            &format!("The request body is not valid JSON: {e}"),
        )
    })?;
    let Value::Array(records) = value else {
        return Err(error_body(
            "InvalidRequestBody",
            "The request body must be a JSON array of records.",
        ));
    };
    if let Some(i) = records.iter().position(|r| !r.is_object()) {
        return Err(error_body(
            "InvalidRequestBody",
            &format!("Record {i} is not a JSON object."),
        ));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_is_required() {
        assert!(check_api_version(Some("api-version=2023-01-01")).is_ok());
        assert!(check_api_version(Some("x=1&api-version=2021-11-01-preview")).is_ok());
        let err = check_api_version(None).unwrap_err();
        assert_eq!(err["error"]["code"], "MissingApiVersionParameter");
        assert!(check_api_version(Some("api-version=")).is_err());
    }

    #[test]
    fn records_are_an_array_of_objects() {
        assert_eq!(parse_records(br#"[{"a":1},{"b":2}]"#).unwrap().len(), 2);
        assert!(parse_records(br#"{"a":1}"#).is_err());
        assert!(parse_records(br#"[1]"#).is_err());
        assert_eq!(
            parse_records(b"[").unwrap_err()["error"]["code"],
            "InvalidRequestBody"
        );
        assert_eq!(fault_body(429)["error"]["code"], "TooManyRequests");
    }
}
