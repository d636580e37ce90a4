//! The pipeline under test: the kit's `els-consumer` process with default tuning, a settings
//! file that sends every org to siem-sim, and what the benchmark reads from `/metrics`.
//!
//! Only `ELS_*` knobs the consumer knows are set (it rejects unknown ones): on top of the
//! kit's (broker, settings file, data directory, admin port, the SSRF allow-list entry for
//! loopback) the topic, a fresh group and a file-only settings store
//! (`ELS_SETTINGS_TOPIC=""`, so no master key is needed).

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::error::Result;
use crate::sim::{HEC_ACK_TOKEN, HEC_TOKEN};
use crate::workload::Endpoint;
pub use els_testkit::{histogram_mean, metric_total, parse_metrics, ConsumerProc};

/// Settings that send every org (`default`) to `url` (with the ack-enabled token for
/// [`Endpoint::HecAck`]).
pub fn settings(url: &str, endpoint: Endpoint) -> serde_json::Value {
    let (kind, token) = match endpoint {
        Endpoint::Hec => ("hec", HEC_TOKEN),
        Endpoint::HecAck => ("hec", HEC_ACK_TOKEN),
        Endpoint::Generic | Endpoint::Ndjson => ("http", HEC_TOKEN),
    };
    let mut stream = json!({
        "url": url,
        "allow_http": true,
        "endpoint": kind,
        "auth_headers": [{"name": "Authorization", "value": format!("Splunk {token}")}]
    });
    if endpoint == Endpoint::Ndjson {
        stream["http"] = json!({"format": "ndjson", "max_events": 500});
    }
    json!({ "default": stream })
}

/// The consumer binary: `bin`, or the sibling `els-consumer`.
pub fn bin(bin: Option<&Path>) -> PathBuf {
    bin.map_or_else(
        || els_testkit::built_bin_or_path("els-consumer"),
        Path::to_path_buf,
    )
}

/// Start a consumer (`bin`, default the sibling `els-consumer`) of `topic` in a new group,
/// delivering to `url`. `extra_env` adds or overrides `ELS_*` variables.
#[allow(clippy::too_many_arguments)]
pub fn start(
    bin: Option<&Path>,
    dir: &Path,
    name: &str,
    brokers: &str,
    topic: &str,
    url: &str,
    endpoint: Endpoint,
    extra_env: &[(String, String)],
) -> Result<ConsumerProc> {
    let bin = self::bin(bin);
    let mut env: Vec<(String, String)> = vec![
        ("ELS_TOPIC".into(), topic.into()),
        (
            "ELS_GROUP_ID".into(),
            format!("els-bench-{name}-{}", uuid::Uuid::new_v4().simple()),
        ),
        ("ELS_INSTANCE_ID".into(), format!("els-bench-{name}")),
        ("ELS_SETTINGS_TOPIC".into(), String::new()),
    ];
    if endpoint == Endpoint::HecAck {
        env.push((
            "ELS_HEC_ACK_POLL_INTERVAL_MS".into(),
            crate::workload::ACK_POLL_MS.to_string(),
        ));
    }
    env.extend_from_slice(extra_env);
    Ok(ConsumerProc::start(
        &bin,
        dir,
        name,
        brokers,
        &settings(url, endpoint),
        &env,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_org_goes_to_the_endpoint() {
        let s = settings("http://127.0.0.1:1/generic", Endpoint::Generic);
        assert_eq!(s["default"]["endpoint"], "http");
        assert_eq!(s["default"]["url"], "http://127.0.0.1:1/generic");
        let auth = &s["default"]["auth_headers"][0]["value"];
        assert_eq!(auth, &json!(format!("Splunk {HEC_TOKEN}")));
        let ack = settings(
            "http://127.0.0.1:1/services/collector/event",
            Endpoint::HecAck,
        );
        assert_eq!(ack["default"]["endpoint"], "hec");
        let auth = &ack["default"]["auth_headers"][0]["value"];
        assert_eq!(auth, &json!(format!("Splunk {HEC_ACK_TOKEN}")));
    }
}
