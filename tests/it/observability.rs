//! Observability against the running pipeline (issue 5): a real Prometheus scraping a
//! consumer and a producer that carry traffic with injected faults.
//!
//! - `counters_reconcile_after_faulty_traffic`: consumed = delivered + filtered +
//!   dead-lettered, every outcome happened, and siem-sim and the producer agree.
//! - `every_dashboard_and_alert_query_returns_series`: every PromQL expression of the Grafana
//!   dashboards and of the alert rules parses and returns series when the real `prometheus`
//!   (Debian package) scrapes the pipeline; it runs deploy/prometheus's own config and rules,
//!   only targets and intervals are swapped for local ones. The injected faults trip the
//!   alerts made for them and no other, and every metric ARCHITECTURE.md asks for is graphed.
//! - `FaultyPipeline`: broker, two siem-sims (one healthy, one answering 503), consumer and
//!   producer, with org settings that make every kind of outcome happen; `Prometheus`: the
//!   server on a free port and its query API.
//!
//! The static checks of the same files (dashboards, promtool, compose) and the dashboard and
//! alert-expression helpers used here are in `deploy_files`.
//!
//! Dashboards use Grafana's `$__rate_interval` in range selectors; these tests substitute
//! [`RATE_INTERVAL`] (deploy/scripts/plot-dashboard.py does the same with its own window).

// These tests print their figures (`--nocapture`) on purpose.
#![allow(clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use els_producer::generate::demo_events;
use els_tests::*;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};

use crate::deploy_files::{alert_signals, panels, read_json, DASHBOARDS};

const TOPIC: &str = "els.events";
/// What `$__rate_interval` becomes here: longer than a test run, so rates and quantiles
/// cover all the traffic the test sent.
const RATE_INTERVAL: &str = "5m";
/// Every test here finishes well within this, or fails.
const TEST_BUDGET: Duration = Duration::from_secs(300);

/// Metrics that ARCHITECTURE.md section 6 requires on a dashboard (histograms by base name).
const MUST_BE_GRAPHED: [&str; 20] = [
    "els_events_consumed_total",
    "els_events_filtered_total",
    "els_events_delivered_total",
    "els_events_dead_lettered_total",
    "els_events_rate_limited_total",
    "els_delivery_retries_total",
    "els_siem_responses_total",
    "els_delivery_latency_seconds",
    "els_siem_request_duration_seconds",
    "els_batch_size_events",
    "els_events_in_flight",
    "els_events_parked",
    "els_dead_letters",
    "els_consumer_lag_messages",
    "els_dead_letters_replayed_total",
    "els_store_errors_total",
    "els_producer_events_received_total",
    "els_producer_events_produced_total",
    "els_producer_produce_errors_total",
    "els_producer_requests_total",
];

/// `(dashboard / panel title, expr)` for every `targets[].expr` of every dashboard.
fn dashboard_queries() -> Vec<(String, String)> {
    let dir = workspace_root().join("deploy/grafana/dashboards");
    let mut out = Vec::new();
    for file in DASHBOARDS {
        let d = read_json(&dir.join(file));
        for p in panels(&d) {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    let title = p["title"].as_str().unwrap_or("?");
                    out.push((format!("{file} / {title}"), expr.to_string()));
                }
            }
        }
    }
    out
}

/// A dashboard expression as Prometheus should see it.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", RATE_INTERVAL)
}

// ---- a pipeline with faults --------------------------------------------------------------

/// broker + two siem-sims (one healthy, one answering 503) + consumer + producer, with org
/// settings that make every kind of outcome happen.
struct FaultyPipeline {
    dir: PathBuf,
    broker: Kafka,
    sim: Sim,
    _failing_sim: Sim,
    consumer: ConsumerProc,
    producer: ProducerProc,
}

/// Invalid records written straight to the topic (the ingest API would refuse them). The
/// second is a whole event but for its malformed type: an unknown, well-formed type such as
/// `FLOW_EXPLODED` is valid (passed on to streams that take all types), a lower-case one is not.
const INVALID_RECORDS: [&str; 3] = [
    "this is not JSON",
    r#"{"event_id": "5f0c6f7e-8a41-4d57-9a7d-1f0e2c3b4a59", "event_type": "flow_exploded",
        "execution_id": "0b6b1c9e-2f0a-4a49-8f51-7d1b7e3c9a10",
        "timestamp": "2026-11-25T01:02:03.456Z", "flow_id": "flo1", "flow_name": "F",
        "org_id": "org-0001", "org_name": "Acme", "org_hostname": "org-0001.example.com",
        "user_id": "u1", "user_email": "0000"}"#,
    r#"{"event_id": 42}"#,
];

/// Org settings: org-0002's events are refused by the SIEM (code 6 -> rejected; a wrong token
/// would pause the stream and hold them instead), org-0003 streams only
/// FLOW_FAILED (the rest is filtered), org-0004 is limited to 5/s with policy dead_letter
/// (rate_limited), org-0005's SIEM answers 503 until retries run out (retries_exhausted),
/// org-0006 uses a generic HTTP endpoint; the others take the default.
fn faulty_settings(sim: &Sim, failing: &Sim) -> Value {
    let hec = settings_for(&sim.hec_url());
    let with = |patch: Value| {
        let mut s = hec.clone();
        for (k, v) in patch.as_object().into_iter().flatten() {
            s[k] = v.clone();
        }
        s
    };
    json!({
        "default": hec,
        "orgs": {
            "org-0003": with(json!({"events": ["FLOW_FAILED"]})),
            "org-0004": with(json!({"max_events":
                {"rate": 5, "per": "second", "policy": "dead_letter"}})),
            "org-0005": with(json!({"url": failing.hec_url()})),
            "org-0006": with(json!({"url": format!("{}/generic", sim.url), "endpoint": "http"})),
        }
    })
}

impl FaultyPipeline {
    async fn start(name: &str) -> Result<Self> {
        let dir = test_dir(name);
        let broker = Kafka::single(&dir)?;
        broker.create_topic(TOPIC, 3).await?;
        let sim = Sim::start(&dir, "siem-sim", &[])?;
        // Every event of org-0002 is invalid to this SIEM (HEC code 6): rejected one by one.
        sim.set_faults(json!({"reject_containing": "org-0002.workflows.example.com"}))
            .await?;
        let failing = Sim::start(&dir, "siem-sim-503", &["--fault-status", "503"])?;
        let consumer = ConsumerProc::start(
            &dir,
            "consumer",
            &broker,
            &faulty_settings(&sim, &failing),
            &[
                // The SIEMs here are on loopback, which the SSRF guard refuses by default.
                ("ELS_SSRF_ALLOW", "127.0.0.1"),
                // Settings come from the file only: no settings topic, no master key needed.
                ("ELS_SETTINGS_TOPIC", ""),
                ("ELS_METRICS_ORG_LABELS", "5"),
                ("ELS_RETRY_INITIAL_MS", "100"),
                ("ELS_RETRY_MAX_INTERVAL_MS", "400"),
                ("ELS_RETRY_MAX_ELAPSED_MS", "2000"),
            ],
        )?;
        let producer = ProducerProc::start(&dir, &broker, &[])?;
        consumer.wait_ready(Duration::from_secs(60)).await?;
        Ok(Self {
            dir,
            broker,
            sim,
            _failing_sim: failing,
            consumer,
            producer,
        })
    }

    /// Post `n` demo events across 8 orgs (stamped now) plus the invalid records; returns
    /// how many records the consumer must finish.
    async fn send_traffic(&self, n: usize) -> Result<usize> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let events: Vec<Value> = demo_events(8, n, 5)
            .into_iter()
            .map(|mut e| {
                e["timestamp"] = json!(now);
                e
            })
            .collect();
        let ids = self.producer.post_all(&events, 250).await?;
        if ids.len() != n {
            bail!("the producer accepted {} of {n} events", ids.len());
        }
        let kafka: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.broker.addr)
            .create()?;
        for payload in INVALID_RECORDS {
            kafka
                .send(
                    FutureRecord::to(TOPIC).key("org-0001").payload(payload),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| e)?;
        }
        Ok(n + INVALID_RECORDS.len())
    }

    async fn producer_metric(&self, name: &str) -> f64 {
        let text = get(format!("{}/metrics", self.producer.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        parse_metrics(&text).get(name).copied().unwrap_or(f64::NAN)
    }

    /// Wait until the consumer consumed `records` and has nothing in flight or parked;
    /// returns its metrics then.
    async fn wait_finished(&self, records: usize) -> Result<BTreeMap<String, f64>> {
        let want = records as f64;
        wait_for(
            "every record finished",
            Duration::from_secs(150),
            || async {
                let m = self.consumer.metrics().await.ok()?;
                let consumed = m.get("els_events_consumed_total").copied()?;
                let in_flight = m.get("els_events_in_flight").copied()?;
                let parked = m.get("els_events_parked").copied()?;
                (consumed >= want && in_flight == 0.0 && parked == 0.0).then_some(m)
            },
        )
        .await
    }
}

/// Run a test body within [`TEST_BUDGET`].
async fn bounded(body: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_BUDGET, body)
        .await
        .expect("test budget exceeded");
}

// ---- c. counters reconcile ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_reconcile_after_faulty_traffic() {
    bounded(reconcile()).await;
}

async fn reconcile() {
    let p = FaultyPipeline::start("obs-reconcile").await.unwrap();
    let records = p.send_traffic(3000).await.unwrap();
    let m = p.wait_finished(records).await.unwrap();

    let get = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
    let consumed = get("els_events_consumed_total");
    let delivered = get("els_events_delivered_total");
    let filtered = get("els_events_filtered_total");
    let dead = metric_total(&m, "els_events_dead_lettered_total");
    let reason = |r: &str| get(&format!("els_events_dead_lettered_total{{reason=\"{r}\"}}"));
    println!(
        "reconcile: consumed {consumed} = delivered {delivered} + filtered {filtered} + \
         dead-lettered {dead} (rejected {}, retries_exhausted {}, rate_limited {}, \
         invalid_event {}); retries {}, rate-limited {}, dead-letter store {}",
        reason("rejected"),
        reason("retries_exhausted"),
        reason("rate_limited"),
        reason("invalid_event"),
        get("els_delivery_retries_total"),
        get("els_events_rate_limited_total"),
        get("els_dead_letters"),
    );
    // At least once: a record read twice (after a rebalance) counts twice, on both sides.
    assert!(consumed >= records as f64, "every record consumed");
    assert_eq!(
        consumed,
        delivered + filtered + dead,
        "counters must reconcile"
    );
    // Every outcome happened, so the equation is not trivially true.
    assert!(delivered > 0.0 && filtered > 0.0);
    for r in [
        "rejected",
        "retries_exhausted",
        "rate_limited",
        "invalid_event",
    ] {
        assert!(reason(r) > 0.0, "no dead letter with reason {r}");
    }
    assert_eq!(reason("invalid_event"), INVALID_RECORDS.len() as f64);
    assert_eq!(get("els_dead_letters"), dead, "store gauge = dead-lettered");
    assert!(get("els_delivery_retries_total") > 0.0);

    // The other side of each counter.
    let stats = p.sim.stats().await.unwrap();
    println!("reconcile: siem-sim stats {stats}");
    assert_eq!(
        stats["events"].as_f64(),
        Some(delivered),
        "delivered = events the healthy SIEM accepted"
    );
    let produced = p
        .producer_metric("els_producer_events_produced_total")
        .await;
    assert_eq!(produced, (records - INVALID_RECORDS.len()) as f64);
}

// ---- a. every dashboard and alert query returns series ----------------------------------

/// A real Prometheus on a free port, running deploy/prometheus/prometheus.yml with local
/// targets and 1 s intervals, and the real alerts.yml next to it.
struct Prometheus {
    url: String,
    _proc: Proc,
    client: reqwest::Client,
}

impl Prometheus {
    fn start(dir: &Path, consumer: &str, producer: &str) -> Result<Self> {
        let deploy = workspace_root().join("deploy/prometheus");
        let mut config = std::fs::read_to_string(deploy.join("prometheus.yml"))?;
        for (from, to) in [
            ("\"consumer:9091\"", format!("\"{consumer}\"")),
            ("\"producer:8080\"", format!("\"{producer}\"")),
            ("scrape_interval: 5s", "scrape_interval: 1s".into()),
            ("scrape_timeout: 4s", "scrape_timeout: 1s".into()),
            ("evaluation_interval: 5s", "evaluation_interval: 1s".into()),
        ] {
            if config.matches(from).count() != 1 {
                bail!("deploy/prometheus/prometheus.yml no longer has `{from}` exactly once");
            }
            config = config.replace(from, &to);
        }
        let conf_dir = dir.join("prometheus");
        std::fs::create_dir_all(&conf_dir)?;
        std::fs::write(conf_dir.join("prometheus.yml"), config)?;
        std::fs::copy(deploy.join("alerts.yml"), conf_dir.join("alerts.yml"))?;
        let port = free_port();
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!(
            "--config.file={}",
            conf_dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            conf_dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn");
        let proc = Proc::spawn("prometheus", cmd, dir.join("prometheus.log")).context(
            "starting prometheus (Debian package `prometheus`; deploy/scripts/install-deps.sh)",
        )?;
        wait_port(&format!("127.0.0.1:{port}"), Duration::from_secs(30))?;
        Ok(Self {
            url: format!("http://127.0.0.1:{port}"),
            _proc: proc,
            client: http(),
        })
    }

    /// `/api/v1/query`: the whole answer (`status`, `data`, or `error`).
    async fn query(&self, expr: &str) -> Result<Value> {
        Ok(self
            .client
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .await?
            .json()
            .await?)
    }

    /// The value of a query returning one series.
    async fn scalar(&self, expr: &str) -> Option<f64> {
        let r = self.query(expr).await.ok()?;
        let result = r["data"]["result"].as_array()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    async fn rules(&self) -> Result<Vec<Value>> {
        let r: Value = self
            .client
            .get(format!("{}/api/v1/rules", self.url))
            .send()
            .await?
            .json()
            .await?;
        Ok(r["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect())
    }
}

/// The expression of the loaded rule `name`.
fn rule_query(rules: &[Value], name: &str) -> String {
    rules
        .iter()
        .find(|r| r["name"] == name)
        .and_then(|r| r["query"].as_str())
        .unwrap_or_else(|| panic!("no rule {name} loaded"))
        .to_string()
}

/// Series count of a successful query answer, or the error.
fn series(answer: &Value) -> Result<(usize, String)> {
    if answer["status"] != "success" {
        bail!("{}: {}", answer["errorType"], answer["error"]);
    }
    let result = answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let first = result
        .first()
        .and_then(|s| s["value"][1].as_str())
        .unwrap_or("-")
        .to_string();
    Ok((result.len(), first))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_and_alert_query_returns_series() {
    bounded(promql()).await;
}

async fn promql() {
    let p = FaultyPipeline::start("obs-promql").await.unwrap();
    let consumer_addr = p
        .consumer
        .admin_url
        .trim_start_matches("http://")
        .to_string();
    let producer_addr = p.producer.url.trim_start_matches("http://").to_string();
    let prom = Prometheus::start(&p.dir, &consumer_addr, &producer_addr).unwrap();
    wait_for("both targets scraped", Duration::from_secs(30), || async {
        (prom.scalar("sum(up)").await? == 2.0).then_some(())
    })
    .await
    .unwrap();

    let records = p.send_traffic(3000).await.unwrap();
    let m = p.wait_finished(records).await.unwrap();
    // Prometheus scraped both targets after everything finished (the final state), and then
    // evaluated every rule on it.
    let finished = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    wait_for(
        "a scrape of the final state",
        Duration::from_secs(30),
        || async {
            let last = prom.scalar("min(timestamp(up))").await?;
            (last > finished).then_some(())
        },
    )
    .await
    .unwrap();
    let seen = prom.scalar("sum(els_events_consumed_total)").await;
    assert_eq!(seen, Some(m["els_events_consumed_total"]));
    // The counters reconcile as Prometheus stores them, too.
    let gap = prom
        .scalar(
            "sum(els_events_consumed_total) - sum(els_events_delivered_total) \
             - sum(els_events_filtered_total) - sum(els_events_dead_lettered_total)",
        )
        .await;
    println!("consumed - delivered - filtered - dead-lettered, in Prometheus: {gap:?}");
    assert_eq!(gap, Some(0.0));
    let since = chrono::Utc::now();
    let rules = wait_for("every rule evaluated", Duration::from_secs(30), || async {
        let rules = prom.rules().await.ok()?;
        let fresh = rules.iter().all(|r| {
            r["lastEvaluation"]
                .as_str()
                .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
                .is_some_and(|t| t > since)
        });
        (fresh && !rules.is_empty()).then_some(rules)
    })
    .await
    .unwrap();

    let mut failures = Vec::new();
    println!("{:>6}  {:>12}  expression (where)", "series", "first value");

    // Dashboards: every target expression.
    let queries = dashboard_queries();
    assert!(
        queries.len() >= 20,
        "only {} dashboard queries",
        queries.len()
    );
    for (at, expr) in &queries {
        let e = substitute(expr);
        match series(&prom.query(&e).await.unwrap()) {
            Ok((n, first)) => {
                println!("{n:>6}  {first:>12}  {e}   ({at})");
                if n == 0 {
                    failures.push(format!("no series: {e} ({at})"));
                }
            }
            Err(err) => failures.push(format!("{err}: {e} ({at})")),
        }
    }

    // Alert rules, as Prometheus loaded them: healthy, parsing, signals with series.
    let mut firing = BTreeSet::new();
    for rule in &rules {
        let name = rule["name"].as_str().unwrap_or("?").to_string();
        let expr = rule["query"].as_str().unwrap_or_default();
        if rule["health"] != "ok" {
            failures.push(format!("rule {name} unhealthy: {}", rule["lastError"]));
        }
        match series(&prom.query(expr).await.unwrap()) {
            Ok((n, first)) => {
                println!(
                    "{n:>6}  {first:>12}  {expr}   (alert {name}, true now: {})",
                    n > 0
                );
                if n > 0 {
                    firing.insert(name.clone());
                }
            }
            Err(err) => failures.push(format!("{err}: {expr} (alert {name})")),
        }
        for signal in alert_signals(expr) {
            match series(&prom.query(&signal).await.unwrap()) {
                Ok((n, first)) => {
                    println!("{n:>6}  {first:>12}  {signal}   (signal of {name})");
                    if n == 0 {
                        failures.push(format!("no series: {signal} (signal of {name})"));
                    }
                }
                Err(err) => failures.push(format!("{err}: {signal} (signal of {name})")),
            }
        }
    }
    println!(
        "{} dashboard queries and {} alert rules evaluated; conditions true now: {firing:?}",
        queries.len(),
        rules.len()
    );
    assert!(
        failures.is_empty(),
        "failing queries:\n{}",
        failures.join("\n")
    );
    assert!(rules.len() >= 6, "only {} alert rules loaded", rules.len());

    // The injected faults trip the alerts made for them, and nothing else is alarmed.
    for expected in ["ElsDeadLettersGrowing", "ElsOrgRateLimited"] {
        assert!(firing.contains(expected), "{expected} should be true now");
    }
    // ElsSiemFailing weighs requests, and the 400/503 requests are a share of them
    // here (below its 10% threshold), but its signal must see them.
    let ratio = prom
        .scalar(&alert_signals(&rule_query(&rules, "ElsSiemFailing"))[0])
        .await
        .unwrap_or(0.0);
    assert!(
        ratio > 0.0,
        "the SIEM failure ratio misses the 400s and 503s"
    );
    for quiet in ["ElsTargetDown", "ElsStoreErrors", "ElsProduceErrors"] {
        assert!(!firing.contains(quiet), "{quiet} should not be true now");
    }

    // Every metric section 6 asks for is on a dashboard; others exposed are reported.
    let all_exprs: String = queries.iter().map(|(_, e)| e.as_str()).collect();
    let mut exposed = BTreeSet::new();
    for url in [&p.consumer.admin_url, &p.producer.url] {
        let text = get(format!("{url}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        exposed.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix("# TYPE "))
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_string),
        );
    }
    let not_graphed: Vec<&String> = exposed
        .iter()
        .filter(|m| !all_exprs.contains(m.as_str()))
        .collect();
    println!(
        "metrics exposed: {}, not on a dashboard: {not_graphed:?}",
        exposed.len()
    );
    for m in MUST_BE_GRAPHED {
        assert!(exposed.contains(m), "{m} is not exposed any more");
        assert!(all_exprs.contains(m), "{m} is on no dashboard");
    }
}
