//! Static checks of the deploy files: nothing of ELS runs, only the tools that read them.
//!
//! - `dashboards_are_well_formed_for_provisioning`: deploy/grafana's dashboards and
//!   provisioning (a fixed datasource uid, unique ids, described panels on a grid without
//!   overlaps, no template variable but `$__rate_interval`).
//! - `promtool_accepts_config_and_rules`: `promtool check` on deploy/prometheus.
//! - `compose_file_is_valid_and_matches_the_workspace`: docker-compose.yml is valid for
//!   Debian's docker-compose and matches the workspace, the Dockerfile, the Prometheus config,
//!   the pinned Kafka release and deploy/compose/settings.json.
//! - `alert_signals` and its unit test: an alert expression split into the signals that must
//!   return series even when the alert is quiet.
//!
//! The live checks of the same files against a running pipeline are in `observability`,
//! which uses `DASHBOARDS`, `read_json`, `panels` and `alert_signals` from here.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use els_tests::workspace_root;
use serde_json::Value;

/// Dashboards checked; the file names under deploy/grafana/dashboards.
pub(crate) const DASHBOARDS: [&str; 2] = ["els-overview.json", "els-orgs.json"];

/// A JSON file of the workspace (panics naming the file when it is missing or not JSON).
pub(crate) fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Panels of a dashboard, those nested in rows included.
pub(crate) fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

// ---- alert expressions -------------------------------------------------------------------

/// The "signals" of an alert expression: `expr` split at top-level `and`/`unless`, each part
/// without its trailing `<comparison> <number>` threshold. (deploy/prometheus/alerts.yml
/// writes every alert in that shape.) A signal must return series even when the alert is not
/// firing; otherwise the alert is watching a metric or label that does not exist.
pub(crate) fn alert_signals(expr: &str) -> Vec<String> {
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

// ---- dashboards are well-formed provisioning ---------------------------------------------

#[test]
fn dashboards_are_well_formed_for_provisioning() {
    let root = workspace_root();
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
    let root = workspace_root();
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
    let root = workspace_root();
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
