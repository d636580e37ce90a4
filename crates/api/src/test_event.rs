//! "Send test event": `POST /v1/orgs/{org}/test`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The request body: no options (an empty body means the same).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestEventRequest {}

/// The SIEM's answer to the sample event, for the operator to read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TestEventResult {
    /// The SIEM's HTTP status; `None` when it never answered (or the SSRF guard refused).
    pub status: Option<u16>,
    /// Response headers, `Set-Cookie` left out; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The start of the body (the server caps it).
    pub body: String,
    pub latency_ms: u64,
    /// The network error or SSRF refusal when there was no answer.
    pub error: Option<String>,
    /// Splunk HEC's `{"text","code"}` from the body, for HEC endpoints.
    pub hec_code: Option<i64>,
    pub hec_text: Option<String>,
    /// The `ackId` of a HEC `200`: the token has indexer acknowledgement on, so ELS counts
    /// its events delivered only once `/services/collector/ack` confirms them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hec_ack_id: Option<u64>,
}

impl TestEventResult {
    /// The SIEM accepted the event: it answered 2xx.
    pub fn is_success(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}
