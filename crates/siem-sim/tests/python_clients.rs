//! The official Python clients against the simulator: `elasticsearch` (helpers.bulk and
//! streaming_bulk, which retries 429 items) and `datadog-api-client` (LogsApi.submit_log).
//! They check what a hand-written test cannot: that the sim is what those clients expect
//! (the `X-Elastic-Product` header, `PUT /_bulk`, vendor content types, 202 `{}`).
//!
//! The interpreter is `SIEM_SIM_PYTHON`, else the test venv that
//! `deploy/scripts/install-deps.sh` makes (`tests/python/.venv`, pinned in
//! `tests/python/requirements.txt`); without the packages the test fails and says how to
//! install them.
//! (`azure-monitor-ingestion` is not driven: `azure-identity` insists on an HTTPS authority.)

use std::process::Command;

use serde_json::{json, Value};
use siem_sim::{spawn, Config, DEFAULT_TOKEN};

fn python() -> String {
    std::env::var("SIEM_SIM_PYTHON").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/python/.venv/bin/python"
        )
        .to_owned()
    })
}

fn has_clients(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import elasticsearch, datadog_api_client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn official_python_clients_work_against_the_sim() {
    let python = python();
    assert!(
        has_clients(&python),
        "{python} lacks the elasticsearch and datadog-api-client packages: run \
         deploy/scripts/install-deps.sh (or set SIEM_SIM_PYTHON to an interpreter that has them)"
    );
    let sim = spawn(Config::ephemeral()).await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/clients.py");
    let url = sim.url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args([script, &url, DEFAULT_TOKEN])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let got: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    assert_eq!(
        got,
        json!({
            "bulk_ok": 20,
            "duplicate_statuses": [409, 409],
            "retried_ok": 5,
            "wrong_key": 401,
            "datadog_ok": 202,
            "datadog_wrong_key": 403,
        })
    );
    let ids = sim.sim().event_ids();
    assert_eq!(ids.len(), 26);
    assert_eq!(ids.last().map(String::as_str), Some("dd0"));
    let stats = sim.sim().stats();
    assert_eq!(stats.receivers["elastic_bulk"].items_by_status["429"], 2);
}
