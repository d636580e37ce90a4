//! The OpenAPI contract (issue 18): both services serve a document generated from their code
//! at `/openapi.json` (public), and schemathesis (PyPI, pinned in `tests/python`) fuzzes every
//! operation of both against real processes on Apache Kafka, bounded in examples and wall
//! time. It must find no server error (5xx) and no answer that breaks the document (status,
//! content type, headers or body against the documented schema).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use els_tests::*;
use serde_json::{json, Value};

/// Examples per operation and phase (schemathesis `--max-examples`).
const MAX_EXAMPLES: &str = "40";
/// Wall-clock bound of one schemathesis run.
const RUN_LIMIT: Duration = Duration::from_secs(240);
/// What "breaks the document" means, plus server errors.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";

/// Requests per operation and the failures, from schemathesis's NDJSON event stream.
#[derive(Debug, Default)]
struct Run {
    /// "METHOD /path" -> (test cases, failed checks).
    per_operation: std::collections::BTreeMap<String, (u64, u64)>,
    server_errors: u64,
    exit: i32,
    output: String,
}

fn schemathesis(
    dir: &Path,
    name: &str,
    schema_url: &str,
    base_url: &str,
    headers: &[String],
) -> Run {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = root.join("python/.venv/bin/schemathesis");
    assert!(
        bin.exists(),
        "{} is missing: run deploy/scripts/install-deps.sh",
        bin.display()
    );
    let events = dir.join(format!("{name}-events.ndjson"));
    // A file, not a pipe: a pipe nobody reads while waiting would fill and stall it.
    let log = dir.join(format!("{name}-schemathesis.log"));
    let mut cmd = std::process::Command::new(&bin);
    cmd.args(["run", schema_url, "--url", base_url, "--checks", CHECKS])
        .args([
            "--max-examples",
            MAX_EXAMPLES,
            // Not the coverage phase: under CPython 3.11 it intermittently crashes inside
            // hypothesis ("SystemError: AST constructor recursion depth mismatch", a CPython
            // bug, not an answer of ours), which made this test flaky on a loaded machine.
            "--phases",
            "examples,fuzzing",
        ])
        .args([
            "--workers",
            "2",
            "--request-timeout",
            "20",
            "--seed",
            "18",
            "--no-shrink",
        ])
        .args(["--report", "ndjson", "--report-ndjson-path"])
        .arg(&events)
        .current_dir(dir)
        .env("SCHEMATHESIS_HOOKS", "")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(
            std::fs::File::create(dir.join(format!("{name}-schemathesis.err"))).unwrap(),
        ));
    for h in headers {
        cmd.args(["--header", h]);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("running schemathesis");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "schemathesis ran past {RUN_LIMIT:?}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = child.wait_with_output().unwrap();
    let mut run = Run {
        exit: status.code().unwrap_or(-1),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        ..Run::default()
    };
    let text = std::fs::read_to_string(&events).unwrap_or_default();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(recorder) = event.get("ScenarioFinished").map(|f| &f["recorder"]) else {
            continue;
        };
        let label = recorder["label"].as_str().unwrap_or("?").to_string();
        let entry = run.per_operation.entry(label).or_default();
        entry.0 += recorder["cases"].as_object().map_or(0, |c| c.len() as u64);
        let checks = recorder["checks"]
            .as_object()
            .into_iter()
            .flat_map(|c| c.values());
        for result in checks.flat_map(|c| c.as_array().into_iter().flatten()) {
            if !result["status"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("success"))
            {
                entry.1 += 1;
            }
        }
        let answers = recorder["interactions"]
            .as_object()
            .into_iter()
            .flat_map(|i| i.values());
        run.server_errors += answers
            .filter(|i| {
                i["response"]["status_code"]
                    .as_u64()
                    .is_some_and(|s| s >= 500)
            })
            .count() as u64;
    }
    run
}

fn report(service: &str, run: &Run) -> (u64, u64) {
    let (mut cases, mut failures) = (0, 0);
    for (op, (n, f)) in &run.per_operation {
        println!("openapi: {service} {op}: {n} examples, {f} failed checks");
        cases += n;
        failures += f;
    }
    println!(
        "openapi: {service}: {} operations, {cases} examples, {failures} failed checks, {} server errors (schemathesis exit {})",
        run.per_operation.len(),
        run.server_errors,
        run.exit
    );
    (cases, failures)
}

#[test]
fn both_services_serve_their_document_and_schemathesis_finds_no_fault() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = test_dir("openapi");
    let broker = Kafka::single(&dir).unwrap();
    let (consumer, producer) = rt.block_on(async {
        broker.create_topic("els.events", 1).await.unwrap();
        let consumer = ConsumerProc::start(&dir, "consumer", &broker, &json!({}), &[]).unwrap();
        consumer.wait_ready(Duration::from_secs(60)).await.unwrap();
        let producer = ProducerProc::start(&dir, &broker, &[]).unwrap();
        (consumer, producer)
    });
    // Public (no token), OpenAPI 3.1; schemathesis must reach every operation in it but the
    // document itself.
    let mut operations = Vec::new();
    for base in [&consumer.admin_url, &producer.url] {
        let doc: Value = rt.block_on(async {
            get(format!("{base}/openapi.json"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        });
        assert_eq!(doc["openapi"], "3.1.0", "{base}");
        let n: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        operations.push(n - 1);
    }
    let auth = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let admin = schemathesis(
        &dir,
        "admin",
        &format!("{}/openapi.json", consumer.admin_url),
        &consumer.admin_url,
        &[auth],
    );
    let (admin_cases, admin_failures) = report("admin", &admin);
    let ingest = schemathesis(
        &dir,
        "ingest",
        &format!("{}/openapi.json", producer.url),
        &producer.url,
        &[],
    );
    let (ingest_cases, ingest_failures) = report("ingest", &ingest);
    for (service, run, failures, operations) in [
        ("admin", &admin, admin_failures, operations[0]),
        ("ingest", &ingest, ingest_failures, operations[1]),
    ] {
        assert_eq!(
            run.per_operation.len(),
            operations,
            "{service}: not every operation was tested:\n{}",
            run.output
        );
        assert_eq!(
            (run.server_errors, failures, run.exit),
            (0, 0, 0),
            "{service}:\n{}",
            run.output
        );
    }
    println!(
        "openapi: totals: {} examples, 0 server errors, 0 answers that break the document",
        admin_cases + ingest_cases
    );
    drop((consumer, producer));
}
