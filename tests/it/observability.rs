//! Observability: real Prometheus against the running pipeline (issue 5).
//!
//! - Every PromQL expression of the Grafana dashboards and of the alert rules parses and
//!   returns series when the real `prometheus` (Debian package) scrapes a consumer and a
//!   producer carrying traffic with injected faults. Prometheus runs deploy/prometheus's own
//!   config and rules; only targets and intervals are swapped for local ones.
//! - `promtool` accepts deploy/prometheus.
//! - The consumer's counters reconcile: consumed = delivered + filtered + dead-lettered.
//! - docker-compose.yml is valid for Debian's docker-compose and matches the workspace, the
//!   Dockerfile, the Prometheus config and the Grafana provisioning.
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

const TOPIC: &str = "els.events";
/// What `$__rate_interval` becomes here: longer than a test run, so rates and quantiles
/// cover all the traffic the test sent.
const RATE_INTERVAL: &str = "5m";
/// Every test here finishes well within this, or fails.
const TEST_BUDGET: Duration = Duration::from_secs(300);
/// Dashboards checked; the file names under deploy/grafana/dashboards.
const DASHBOARDS: [&str; 2] = ["els-overview.json", "els-orgs.json"];

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

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Panels of a dashboard, those nested in rows included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// `(dashboard / panel title, expr)` for every `targets[].expr` of every dashboard.
fn dashboard_queries() -> Vec<(String, String)> {
    let dir = repo_root().join("deploy/grafana/dashboards");
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

// ---- alert expressions -------------------------------------------------------------------

/// The "signals" of an alert expression: `expr` split at top-level `and`/`unless`, each part
/// without its trailing `<comparison> <number>` threshold. (deploy/prometheus/alerts.yml
/// writes every alert in that shape.) A signal must return series even when the alert is not
/// firing; otherwise the alert is watching a metric or label that does not exist.
fn alert_signals(expr: &str) -> Vec<String> {
    split_top_level(expr, &["and", "unless"])
        .into_iter()
        .map(|part| strip_threshold(&part))
        .collect()
}

/// Split at the given keyword operators outside parentheses, brackets, braces and strings.
fn split_top_level(expr: &str, keywords: &[&str]) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start, mut i) = (0i32, None::<char>, 0usize, 0usize);
    while i < chars.len() {
        let c = chars[i];
        match (quote, c) {
            (Some(q), _) if c == q && (i == 0 || chars[i - 1] != '\\') => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'' | '`') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth -= 1,
            (None, _) if depth == 0 => {
                let before_ok = i == 0 || chars[i - 1].is_whitespace() || chars[i - 1] == ')';
                let rest: String = chars[i..].iter().collect();
                let hit = keywords.iter().find(|k| {
                    rest.starts_with(*k)
                        && rest[k.len()..]
                            .chars()
                            .next()
                            .is_some_and(|n| n.is_whitespace() || n == '(')
                });
                if let (true, Some(k)) = (before_ok, hit) {
                    parts.push(
                        chars[start..i]
                            .iter()
                            .collect::<String>()
                            .trim()
                            .to_string(),
                    );
                    i += k.len();
                    start = i;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(chars[start..].iter().collect::<String>().trim().to_string());
    parts
}

/// `signal > 0.1` -> `signal`; an expression without a trailing threshold is kept whole.
fn strip_threshold(part: &str) -> String {
    let part = part.trim();
    let Some((head, number)) = part.rsplit_once(char::is_whitespace) else {
        return part.to_string();
    };
    if number.parse::<f64>().is_err() {
        return part.to_string();
    }
    let head = head.trim_end();
    let head = head.strip_suffix("bool").map(str::trim_end).unwrap_or(head);
    for op in [">=", "<=", "==", "!=", ">", "<"] {
        if let Some(signal) = head.strip_suffix(op) {
            return signal.trim().to_string();
        }
    }
    part.to_string()
}

#[test]
fn alert_signals_drop_thresholds_and_split_conjunctions() {
    assert_eq!(alert_signals("sum(x) > 0"), ["sum(x)"]);
    assert_eq!(alert_signals("up{job=~\"a|b\"} == 0"), ["up{job=~\"a|b\"}"]);
    assert_eq!(
        alert_signals("(sum(rate(a{s!~\"2..\"}[5m])) or vector(0)) / sum(rate(a[5m])) > 0.1"),
        ["(sum(rate(a{s!~\"2..\"}[5m])) or vector(0)) / sum(rate(a[5m]))"]
    );
    assert_eq!(
        alert_signals("sum(delta(l[10m])) > 0 and sum(l) > 1000"),
        ["sum(delta(l[10m]))", "sum(l)"]
    );
    assert_eq!(alert_signals("x unless on() y"), ["x", "on() y"]);
    assert_eq!(
        alert_signals("count(up{band=\"x and y\"}) >= bool 2"),
        ["count(up{band=\"x and y\"})"]
    );
    assert_eq!(alert_signals("sum(x)"), ["sum(x)"]);
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

/// Invalid records written straight to the topic (the ingest API would refuse them).
const INVALID_RECORDS: [&str; 3] = [
    "this is not JSON",
    r#"{"org_id": "org-0001", "event_type": "FLOW_EXPLODED"}"#,
    r#"{"event_id": 42}"#,
];

/// Org settings: org-0002 has a wrong HEC token (403 -> rejected), org-0003 streams only
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
            "org-0002": with(json!({"auth_headers": [
                {"name": "Authorization", "value": "Splunk wrong-token-for-this-org"}]})),
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

fn sum_prefix(m: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
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
    let dead = sum_prefix(&m, "els_events_dead_lettered_total{");
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
        let deploy = repo_root().join("deploy/prometheus");
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
    // ElsSiemFailing weighs requests, and the 403/503 batches are a few percent of them
    // here (below its 10% threshold), but its signal must see them.
    let ratio = prom
        .scalar(&alert_signals(&rule_query(&rules, "ElsSiemFailing"))[0])
        .await
        .unwrap_or(0.0);
    assert!(
        ratio > 0.0,
        "the SIEM failure ratio misses the 403s and 503s"
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

// ---- dashboards are well-formed provisioning ---------------------------------------------

#[test]
fn dashboards_are_well_formed_for_provisioning() {
    let root = repo_root();
    let ds = std::fs::read_to_string(
        root.join("deploy/grafana/provisioning/datasources/prometheus.yml"),
    )
    .unwrap();
    let uid = ds
        .lines()
        .find_map(|l| l.trim().strip_prefix("uid:"))
        .map(str::trim)
        .expect("the datasource has a fixed uid");
    assert!(ds.contains("url: http://prometheus:9090"));
    let provider =
        std::fs::read_to_string(root.join("deploy/grafana/provisioning/dashboards/els.yml"))
            .unwrap();
    assert!(provider.contains("path: /var/lib/grafana/dashboards"));

    let mut uids = BTreeSet::new();
    for file in DASHBOARDS {
        let d = read_json(&root.join("deploy/grafana/dashboards").join(file));
        let duid = d["uid"].as_str().expect("dashboard uid");
        assert!(
            uids.insert(duid.to_string()),
            "duplicate dashboard uid {duid}"
        );
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(
            d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
            "{file}: schemaVersion"
        );
        assert!(
            d["id"].is_null(),
            "{file}: provisioned dashboards carry no numeric id"
        );
        let mut ids = BTreeSet::new();
        let mut cells: BTreeSet<(u64, u64)> = BTreeSet::new();
        let mut n_queries = 0;
        for p in panels(&d) {
            let title = p["title"].as_str().unwrap_or_default();
            assert!(!title.is_empty(), "{file}: a panel has no title");
            assert!(
                ids.insert(p["id"].as_u64().expect("panel id")),
                "{file}: duplicate id"
            );
            let desc = p["description"].as_str().unwrap_or_default();
            assert!(
                desc.len() >= 40,
                "{file} / {title}: describe what it means and what is normal"
            );
            let g = &p["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_u64().unwrap(),
                g["y"].as_u64().unwrap(),
                g["w"].as_u64().unwrap(),
                g["h"].as_u64().unwrap(),
            );
            assert!(x + w <= 24 && w > 0 && h > 0, "{file} / {title}: gridPos");
            for cx in x..x + w {
                for cy in y..y + h {
                    assert!(
                        cells.insert((cx, cy)),
                        "{file} / {title} overlaps another panel"
                    );
                }
            }
            for t in p["targets"].as_array().into_iter().flatten() {
                n_queries += 1;
                assert_eq!(
                    t["datasource"]["uid"], uid,
                    "{file} / {title}: datasource uid"
                );
                assert!(t["refId"].is_string(), "{file} / {title}: refId");
                let expr = t["expr"].as_str().expect("expr");
                let rest = expr.replace("$__rate_interval", "");
                assert!(
                    !rest.contains('$'),
                    "{file} / {title}: template variable in {expr}"
                );
            }
            if p["type"] != "text" {
                assert_eq!(
                    p["datasource"]["uid"], uid,
                    "{file} / {title}: datasource uid"
                );
                assert!(p["targets"].as_array().is_some_and(|t| !t.is_empty()));
            }
        }
        println!("{file}: {} panels, {n_queries} queries", ids.len());
    }
}

// ---- b. promtool -------------------------------------------------------------------------

#[test]
fn promtool_accepts_config_and_rules() {
    let root = repo_root();
    for args in [
        ["check", "config", "deploy/prometheus/prometheus.yml"],
        ["check", "rules", "deploy/prometheus/alerts.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&root)
            .output()
            .expect(
                "promtool is missing: run deploy/scripts/install-deps.sh (Debian `prometheus`)",
            );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("promtool {}:\n{}", args.join(" "), text.trim_end());
        assert!(out.status.success(), "promtool {} failed", args.join(" "));
    }
}

// ---- d. docker-compose.yml and the Dockerfile --------------------------------------------

/// The compose file as JSON, through the PyYAML that Debian's docker-compose itself uses.
fn compose_as_json(root: &Path, compose: &Path) -> Value {
    let python = python_of_docker_compose().unwrap_or_else(|| "python3".into());
    let out = Command::new(&python)
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(compose)
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| panic!("running {python} to read YAML: {e}"));
    assert!(
        out.status.success(),
        "{python} could not read {}: {}",
        compose.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The interpreter in docker-compose's `#!` line (Debian's v1 is a Python program).
fn python_of_docker_compose() -> Option<String> {
    let path = std::env::var_os("PATH")?;
    let exe = std::env::split_paths(&path)
        .map(|d| d.join("docker-compose"))
        .find(|p| p.is_file())?;
    let text = std::fs::read(exe).ok()?;
    let first = text.split(|b| *b == b'\n').next()?;
    let line = String::from_utf8_lossy(first);
    let interp = line
        .strip_prefix("#!")?
        .split_whitespace()
        .next()?
        .to_string();
    interp.contains("python").then_some(interp)
}

/// Logical lines of a Dockerfile: continuations joined, comments dropped.
fn dockerfile_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    out
}

#[test]
fn compose_file_is_valid_and_matches_the_workspace() {
    let root = repo_root();
    let compose_path = root.join("docker-compose.yml");

    // 1. Debian's docker-compose accepts it.
    let out = match Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config", "-q"])
        .current_dir(&root)
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "docker-compose is not installed ({e}): run deploy/scripts/install-deps.sh, \
             which installs Debian's docker-compose"
        ),
    };
    assert!(
        out.status.success(),
        "docker-compose config failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let compose = compose_as_json(&root, &compose_path);
    let services = compose["services"].as_object().expect("services");
    let declared_volumes: BTreeSet<&str> = compose["volumes"]
        .as_object()
        .map(|v| v.keys().map(String::as_str).collect())
        .unwrap_or_default();

    // 2. Every service can be created, and everything it refers to exists.
    let mut dockerfiles = BTreeSet::new();
    for (name, s) in services {
        assert!(
            s.get("image").is_some() || s.get("build").is_some(),
            "service {name} has neither image nor build"
        );
        if let Some(b) = s.get("build") {
            let context = root.join(b["context"].as_str().unwrap_or("."));
            let file = context.join(b["dockerfile"].as_str().unwrap_or("Dockerfile"));
            assert!(file.is_file(), "{name}: {} is missing", file.display());
            dockerfiles.insert(file);
        }
        let deps: Vec<String> = match &s["depends_on"] {
            Value::Object(m) => m.keys().cloned().collect(),
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(Into::into))
                .collect(),
            _ => Vec::new(),
        };
        for d in deps {
            assert!(
                services.contains_key(&d),
                "{name} depends on unknown service {d}"
            );
        }
        for v in s["volumes"].as_array().into_iter().flatten() {
            let spec = v.as_str().expect("short volume syntax");
            let source = spec.split(':').next().unwrap_or_default();
            if source.starts_with('.') || source.starts_with('/') {
                let path = root.join(source);
                assert!(
                    path.exists(),
                    "{name}: bind mount {} is missing",
                    path.display()
                );
            } else {
                assert!(
                    declared_volumes.contains(source),
                    "{name}: volume {source} is not declared under volumes:"
                );
            }
        }
        for port in s["ports"].as_array().into_iter().flatten() {
            let port = port.as_str().unwrap_or_default();
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name}: port {port} must bind 127.0.0.1"
            );
        }
    }
    for required in [
        "kafka",
        "kafka-init",
        "siem-sim",
        "consumer",
        "producer",
        "traffic",
        "prometheus",
        "grafana",
    ] {
        assert!(
            services.contains_key(required),
            "service {required} is missing"
        );
    }

    // The broker in compose is the Apache Kafka release that tests, the local run and the
    // benchmark use (pinned in deploy/kafka/pom.xml).
    let pom = std::fs::read_to_string(root.join("deploy/kafka/pom.xml")).unwrap();
    let pinned = pom
        .split("<kafka.version>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("kafka.version in deploy/kafka/pom.xml");
    for svc in ["kafka", "kafka-init"] {
        assert_eq!(
            services[svc]["image"].as_str(),
            Some(format!("apache/kafka:{pinned}").as_str()),
            "{svc} must run the Kafka release deploy/kafka pins"
        );
    }

    // 3. Prometheus scrapes what compose runs, and Grafana reads that Prometheus.
    let env = |svc: &str, key: &str| services[svc]["environment"][key].as_str().map(String::from);
    let prom = std::fs::read_to_string(root.join("deploy/prometheus/prometheus.yml")).unwrap();
    let consumer_port = env("consumer", "ELS_ADMIN_LISTEN").unwrap();
    let producer_port = env("producer", "ELS_LISTEN").unwrap();
    for (svc, listen) in [("consumer", consumer_port), ("producer", producer_port)] {
        let port = listen.rsplit(':').next().unwrap();
        assert!(
            prom.contains(&format!("\"{svc}:{port}\"")),
            "prometheus.yml must scrape {svc}:{port}"
        );
    }
    // Dynamic group membership: a lost consumer's partitions go to the survivors after the
    // session timeout, and a coordinator failover cannot fence a static member for good.
    assert!(
        env("consumer", "ELS_INSTANCE_ID").is_none(),
        "compose must not set static membership (ELS_INSTANCE_ID)"
    );

    // 4. The settings file the consumer mounts is valid org settings.
    let settings = read_json(&root.join("deploy/compose/settings.json"));
    let mut all: Vec<(String, &Value)> = settings["orgs"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(org, s)| (org.clone(), s))
        .collect();
    all.extend(settings.get("default").map(|d| ("default".to_string(), d)));
    for (org, s) in &all {
        let parsed = els_model::settings::OrgSettings::from_json(s.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("deploy/compose/settings.json, {org}: {e}"));
        parsed
            .validate()
            .unwrap_or_else(|e| panic!("deploy/compose/settings.json, {org}: {e}"));
    }
    let orgs = all.len();
    assert!(settings.get("default").is_some() && orgs >= 2);

    // 5. The Dockerfile builds and copies what the workspace has.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo metadata failed");
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages: BTreeSet<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str().map(Into::into))
        .collect();
    let bins: BTreeSet<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str().map(Into::into))
        .collect();
    assert_eq!(dockerfiles.len(), 1, "one image for every ELS service");
    for dockerfile in &dockerfiles {
        let lines = dockerfile_lines(&std::fs::read_to_string(dockerfile).unwrap());
        let build = lines
            .iter()
            .find(|l| l.contains("cargo build"))
            .expect("a cargo build step");
        let words: Vec<&str> = build.split_whitespace().collect();
        // The `cargo build ...` command itself: up to the next `&&`.
        let cargo_words: Vec<&str> = build[build.find("cargo build").unwrap_or(0)..]
            .split_whitespace()
            .take_while(|w| *w != "&&")
            .collect();
        let built: Vec<&str> = cargo_words
            .windows(2)
            .filter(|w| w[0] == "-p" || w[0] == "--package")
            .map(|w| w[1])
            .collect();
        assert!(build.contains("--release") && build.contains("--locked"));
        assert!(
            root.join("Cargo.lock").is_file(),
            "--locked needs Cargo.lock"
        );
        let mut copied = Vec::new();
        for line in &lines {
            if let Some(rest) = line.strip_prefix("COPY --from=builder ") {
                let args: Vec<&str> = rest.split_whitespace().collect();
                let (dest, sources) = args.split_last().expect("COPY sources and destination");
                assert_eq!(*dest, "/usr/local/bin/");
                copied.extend(sources.iter().map(|s| s.rsplit('/').next().unwrap_or(s)));
            }
        }
        // The `cp target/release/<bin>` inside the build step names the same binaries.
        let cp_release: BTreeSet<&str> = words
            .iter()
            .filter_map(|w| w.strip_prefix("target/release/"))
            .collect();
        println!(
            "{}: builds {built:?}, copies {copied:?}",
            dockerfile
                .strip_prefix(&root)
                .unwrap_or(dockerfile)
                .display()
        );
        for p in &built {
            assert!(
                packages.contains(*p),
                "Dockerfile builds unknown package {p}"
            );
        }
        for b in &copied {
            assert!(bins.contains(*b), "Dockerfile copies unknown binary {b}");
            assert!(
                cp_release.contains(b),
                "{b} is copied but not taken from target/release"
            );
        }
        for want in ["els-producer", "els-consumer", "elsctl", "siem-sim"] {
            assert!(built.contains(&want), "Dockerfile does not build {want}");
            assert!(copied.contains(&want), "Dockerfile does not install {want}");
        }
        let user = lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("USER "))
            .expect("a USER line");
        assert!(
            !user.starts_with("root") && !user.starts_with('0'),
            "runs as root"
        );
        // Every command the compose services run is a binary of the image (or a shell).
        for (name, s) in services {
            if s.get("build").is_none() {
                continue;
            }
            let first = s["command"][0].as_str().unwrap_or("els-consumer");
            assert!(
                copied.contains(&first),
                "{name} runs {first}, not in the image"
            );
        }
    }
    println!(
        "compose: {} services, volumes {:?}, packages {packages:?}, bins {bins:?}",
        services.len(),
        declared_volumes
    );
}
