//! HTTP-level tests of the receivers beyond HEC: batched generic HTTP, Elasticsearch `_bulk`,
//! Datadog logs, the OAuth2 token endpoint and the Logs Ingestion API. A simulator on
//! 127.0.0.1:0 per test, driven with reqwest.

use std::io::Write;
use std::time::Duration;

use flate2::{write::GzEncoder, Compression};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use siem_sim::{spawn, Config, OAuthClient, SimHandle, DEFAULT_TOKEN};

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn start(config: Config) -> SimHandle {
    spawn(config).await.expect("simulator starts")
}

async fn send(req: RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

async fn stats(sim: &SimHandle) -> Value {
    send(client().get(format!("{}/sim/stats", sim.url())))
        .await
        .1
}

async fn put_faults(sim: &SimHandle, faults: Value) {
    let (status, body) = send(
        client()
            .put(format!("{}/sim/faults", sim.url()))
            .json(&faults),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn ndjson(ids: &[String]) -> String {
    ids.iter()
        .map(|id| json!({"event_id": id, "org_id": "o1"}).to_string() + "\n")
        .collect()
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

// ------------------------------------------------------------------------------------------
// Batched generic HTTP

fn batch(sim: &SimHandle, kind: &str, auth: Option<&str>) -> RequestBuilder {
    let mut req = client().post(format!("{}/http/{kind}", sim.url()));
    if let Some(auth) = auth {
        req = req.header("Authorization", auth);
    }
    req
}

const BEARER: &str = "Bearer els-demo-token";

#[tokio::test]
async fn ndjson_and_array_batches_are_stored_whole_or_not_at_all() {
    let sim = start(Config {
        batch_max_events: 5,
        batch_max_bytes: 2048,
        ..Config::ephemeral()
    })
    .await;
    let body = format!("{}\n\n", ndjson(&ids("n", 3)));
    let (status, got) = send(
        batch(&sim, "ndjson", Some(BEARER))
            .header("Content-Type", "application/x-ndjson")
            .body(body),
    )
    .await;
    assert_eq!((status, got), (StatusCode::OK, json!({"accepted": 3})));
    let (status, _) = send(
        batch(&sim, "ndjson", Some(BEARER))
            .header("Content-Encoding", "gzip")
            .body(gzip(ndjson(&ids("g", 2)).as_bytes())),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, got) = send(
        batch(&sim, "array", Some("Splunk els-demo-token")).json(&json!([{"event_id": "a0"}])),
    )
    .await;
    assert_eq!((status, got), (StatusCode::OK, json!({"accepted": 1})));

    // Refusals store nothing.
    let (status, got) = send(batch(&sim, "ndjson", Some(BEARER)).body(ndjson(&ids("x", 6)))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        (got["cap"].clone(), got["limit"].clone()),
        (json!("max_events"), json!(5))
    );
    let (status, got) =
        send(batch(&sim, "array", Some(BEARER)).json(&json!([{"pad": "p".repeat(3000)}]))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(got["cap"], "max_bytes");
    let (status, got) =
        send(batch(&sim, "ndjson", Some(BEARER)).body("{\"event_id\":\"y0\"}\n\n{oops\n")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(got["line"], 3);
    let (status, _) =
        send(batch(&sim, "array", Some(BEARER)).json(&json!({"event_id": "z"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, got) = send(batch(&sim, "array", None).json(&json!([{}]))).await;
    assert_eq!(
        (status, got["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!(2))
    );
    let (status, got) = send(batch(&sim, "array", Some("Bearer nope")).json(&json!([{}]))).await;
    assert_eq!(
        (status, got["code"].clone()),
        (StatusCode::FORBIDDEN, json!(4))
    );

    assert_eq!(sim.sim().event_ids(), ["n0", "n1", "n2", "g0", "g1", "a0"]);
    let stats = stats(&sim).await;
    assert_eq!(stats["receivers"]["http_ndjson"]["events"], 5);
    assert_eq!(stats["receivers"]["http_ndjson"]["requests"], 4);
    assert_eq!(
        stats["receivers"]["http_array"]["by_status"],
        json!({"200": 1, "400": 1, "401": 1, "403": 1, "413": 1})
    );
}

#[tokio::test]
async fn global_faults_apply_to_batches() {
    let sim = start(Config::ephemeral()).await;
    put_faults(
        &sim,
        json!({"status": 503, "fail_next": 1, "retry_after": "2"}),
    )
    .await;
    let resp = batch(&sim, "ndjson", Some(BEARER))
        .body(ndjson(&ids("f", 2)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "2");
    let (status, _) = send(batch(&sim, "ndjson", Some(BEARER)).body(ndjson(&ids("f", 2)))).await;
    assert_eq!(status, StatusCode::OK);
    put_faults(&sim, json!({"reject_containing": "poison"})).await;
    let (status, got) = send(
        batch(&sim, "array", Some(BEARER)).json(&json!([{"event_id": "p0"}, {"x": "poison"}])),
    )
    .await;
    assert_eq!(
        (status, got["index"].clone()),
        (StatusCode::BAD_REQUEST, json!(1))
    );
    assert_eq!(sim.sim().event_ids(), ["f0", "f1"]);
}

// ------------------------------------------------------------------------------------------
// Elasticsearch _bulk

fn bulk_req(sim: &SimHandle, path: &str, body: impl Into<reqwest::Body>) -> RequestBuilder {
    bulk_unauthenticated(sim, path, body).header("Authorization", "ApiKey els-demo-token")
}

fn bulk_unauthenticated(
    sim: &SimHandle,
    path: &str,
    body: impl Into<reqwest::Body>,
) -> RequestBuilder {
    client()
        .post(format!("{}{path}", sim.url()))
        .header("Content-Type", "application/x-ndjson")
        .body(body)
}

fn creates(index: &str, ids: &[String]) -> String {
    ids.iter()
        .map(|id| {
            format!(
                "{}\n{}\n",
                json!({"create": {"_index": index, "_id": id}}),
                json!({"event_id": id, "org_id": "o1", "depth": 1})
            )
        })
        .collect()
}

fn item_statuses(body: &Value) -> Vec<u64> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            item.as_object().unwrap().values().next().unwrap()["status"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn bulk_with_three_forced_429_items_stores_the_other_497() {
    let sim = start(Config::ephemeral()).await;
    put_faults(
        &sim,
        json!({"bulk_rejections": {"count": 3, "within": 500}}),
    )
    .await;
    let all = ids("e", 500);
    let resp = bulk_req(&sim, "/_bulk", creates("els", &all))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-elastic-product"], "Elasticsearch");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"], true);
    let statuses = item_statuses(&body);
    let rejected: Vec<usize> = (0..500).filter(|&i| statuses[i] == 429).collect();
    assert_eq!(rejected.len(), 3);
    assert_eq!(statuses.iter().filter(|&&s| s == 201).count(), 497);
    let item = &body["items"][rejected[0]]["create"];
    assert_eq!(item["error"]["type"], "es_rejected_execution_exception");
    assert_eq!(sim.sim().event_ids().len(), 497);
    // The fault is spent: re-sending the rejected three creates them.
    let again: Vec<String> = rejected.iter().map(|&i| all[i].clone()).collect();
    let (_, body) = send(bulk_req(&sim, "/_bulk", creates("els", &again))).await;
    assert_eq!(body["errors"], false);
    assert_eq!(item_statuses(&body), [201, 201, 201]);
    let stats = stats(&sim).await;
    assert_eq!(stats["distinct_event_ids"], 500);
    assert_eq!(stats["duplicates"], 0);
    assert_eq!(
        stats["receivers"]["elastic_bulk"]["items_by_status"],
        json!({"201": 500, "429": 3})
    );
    assert_eq!(sim.sim().faults().bulk_rejections, None);
}

#[tokio::test]
async fn duplicate_create_conflicts_index_overwrites_and_mapping_errors_persist() {
    let sim = start(Config::ephemeral()).await;
    put_faults(
        &sim,
        json!({"mapping_error_ids": ["bad"], "mapping_long_fields": ["depth"]}),
    )
    .await;
    let (status, body) = send(bulk_req(&sim, "/els/_bulk", creates("els", &ids("d", 2)))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(item_statuses(&body), [201, 201]);
    // A re-sent duplicate: 409, not stored again.
    let (_, body) = send(bulk_req(&sim, "/els/_bulk", creates("els", &ids("d", 1)))).await;
    assert_eq!(body["errors"], true);
    let item = &body["items"][0]["create"];
    assert_eq!(item["status"], 409);
    assert_eq!(item["error"]["type"], "version_conflict_engine_exception");
    // `index` overwrites; the default index comes from the path.
    let overwrite = format!(
        "{}\n{}\n",
        json!({"index": {"_id": "d0"}}),
        json!({"event_id": "d0"})
    );
    let (_, body) = send(bulk_req(&sim, "/els/_bulk", overwrite)).await;
    assert_eq!(body["items"][0]["index"]["result"], "updated");
    assert_eq!(body["items"][0]["index"]["status"], 200);
    // PUT works as POST (the official Python client sends PUT).
    let put = client()
        .put(format!("{}/_bulk", sim.url()))
        .header("Authorization", "ApiKey els-demo-token")
        .header(
            "Content-Type",
            "application/vnd.elasticsearch+x-ndjson; compatible-with=8",
        )
        .body(creates("els", &ids("p", 1)));
    let (status, body) = send(put).await;
    assert_eq!((status, item_statuses(&body)), (StatusCode::OK, vec![201]));
    // A mapping error fails every time.
    for _ in 0..2 {
        let (_, body) = send(bulk_req(
            &sim,
            "/_bulk",
            creates("els", &["bad".to_owned()]),
        ))
        .await;
        let item = &body["items"][0]["create"];
        assert_eq!(item["status"], 400);
        assert_eq!(item["error"]["type"], "document_parsing_exception");
    }
    let string_depth = format!(
        "{}\n{}\n",
        json!({"create": {"_index": "els", "_id": "s"}}),
        json!({"event_id": "s", "depth": "deep"})
    );
    let (_, body) = send(bulk_req(&sim, "/_bulk", string_depth)).await;
    assert_eq!(item_statuses(&body), [400]);
    assert_eq!(sim.sim().event_ids(), ["d0", "d1", "d0", "p0"]);
}

#[tokio::test]
async fn bulk_body_auth_and_size_errors() {
    let sim = start(Config {
        es_max_content_length: 1000,
        ..Config::ephemeral()
    })
    .await;
    let (status, body) = send(bulk_req(&sim, "/_bulk", "{nope\n{}\n")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["type"], "x_content_parse_exception");
    assert_eq!(
        body["error"]["root_cause"][0]["type"],
        "x_content_parse_exception"
    );
    assert_eq!(body["status"], 400);
    let (status, body) = send(bulk_req(
        &sim,
        "/_bulk",
        "{\"create\":{\"_index\":\"els\"}}\n",
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["type"], "action_request_validation_exception");
    let (status, body) = send(bulk_req(&sim, "/_bulk", "{\"create\":{}}\n{}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["type"], "illegal_argument_exception");
    // Too large: 413 before anything is read.
    let (status, _) = send(bulk_req(&sim, "/_bulk", creates("els", &ids("big", 20)))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Auth: missing and wrong are 401 security_exception; Basic and Bearer work too.
    let small = creates("els", &ids("a", 1));
    let resp = client()
        .post(format!("{}/_bulk", sim.url()))
        .header("Content-Type", "application/json")
        .body(small.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers().get_all("www-authenticate").iter().count(), 2);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "security_exception");
    let wrong =
        bulk_unauthenticated(&sim, "/_bulk", small.clone()).header("Authorization", "ApiKey nope");
    assert_eq!(send(wrong).await.0, StatusCode::UNAUTHORIZED);
    let basic = bulk_unauthenticated(&sim, "/_bulk", small.clone())
        .basic_auth("elastic", Some(DEFAULT_TOKEN));
    assert_eq!(send(basic).await.0, StatusCode::OK);
    let bearer = bulk_unauthenticated(&sim, "/_bulk", creates("els", &ids("b", 1)))
        .bearer_auth(DEFAULT_TOKEN);
    assert_eq!(send(bearer).await.0, StatusCode::OK);
    let text = client()
        .post(format!("{}/_bulk", sim.url()))
        .header("Authorization", "ApiKey els-demo-token")
        .header("Content-Type", "text/plain")
        .body(small);
    assert_eq!(send(text).await.0, StatusCode::NOT_ACCEPTABLE);
    // A whole-request fault answers Elasticsearch's shape.
    put_faults(&sim, json!({"status": 429, "fail_next": 1})).await;
    let (status, body) = send(bulk_req(&sim, "/_bulk", creates("els", &ids("c", 1)))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["type"], "es_rejected_execution_exception");
    let stats = stats(&sim).await;
    assert_eq!(
        stats["receivers"]["elastic_bulk"]["by_status"],
        json!({"200": 2, "400": 3, "401": 2, "406": 1, "413": 1, "429": 1})
    );
}

// ------------------------------------------------------------------------------------------
// Datadog logs

fn dd(sim: &SimHandle, key: Option<&str>) -> RequestBuilder {
    let mut req = client().post(format!("{}/api/v2/logs", sim.url()));
    if let Some(key) = key {
        req = req.header("DD-API-KEY", key);
    }
    req
}

#[tokio::test]
async fn datadog_intake_answers_as_documented() {
    let sim = start(Config::ephemeral()).await;
    let entry = |id: &str| {
        json!({
            "ddsource": "els", "ddtags": "env:test", "hostname": "h", "service": "els",
            "message": json!({"event_id": id, "org_id": "o1"}).to_string(),
        })
    };
    let (status, body) =
        send(dd(&sim, Some(DEFAULT_TOKEN)).json(&json!([entry("m0"), entry("m1")]))).await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, json!({})));
    let (status, _) =
        send(dd(&sim, Some(DEFAULT_TOKEN)).json(&json!({"event_id": "s0", "message": "x"}))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let gz = dd(&sim, Some(DEFAULT_TOKEN))
        .header("Content-Encoding", "gzip")
        .header("Content-Type", "application/json")
        .body(gzip(json!([entry("z0")]).to_string().as_bytes()));
    assert_eq!(send(gz).await.0, StatusCode::ACCEPTED);

    let (status, body) = send(dd(&sim, Some("wrong")).json(&json!([entry("w")]))).await;
    assert_eq!(
        (status, body),
        (StatusCode::FORBIDDEN, json!({"errors": ["Forbidden"]}))
    );
    let (status, _) = send(dd(&sim, None).json(&json!([entry("w")]))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(dd(&sim, Some(DEFAULT_TOKEN)).body("[{")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let many: Vec<Value> = (0..1001).map(|i| entry(&format!("t{i}"))).collect();
    let (status, body) = send(dd(&sim, Some(DEFAULT_TOKEN)).json(&many)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["errors"][0], "Payload Too Large");
    let huge = vec![json!({"message": "x".repeat(600_000)}); 9];
    let (status, _) = send(dd(&sim, Some(DEFAULT_TOKEN)).json(&huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // A log over 1 MB is accepted truncated.
    let big = json!([{"event_id": "big", "message": "y".repeat(1_200_000)}]);
    let (status, _) = send(dd(&sim, Some(DEFAULT_TOKEN)).json(&big)).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    assert_eq!(sim.sim().event_ids(), ["m0", "m1", "s0", "z0", "big"]);
    let stats = stats(&sim).await;
    let dd_stats = &stats["receivers"]["datadog_logs"];
    assert_eq!(dd_stats["events"], 5);
    assert_eq!(dd_stats["truncated"], 1);
    assert_eq!(
        dd_stats["by_status"],
        json!({"202": 4, "400": 1, "401": 1, "403": 1, "413": 2})
    );
}

// ------------------------------------------------------------------------------------------
// OAuth2 and the Logs Ingestion API

fn oauth_config(ttl_secs: u64) -> Config {
    Config {
        oauth_clients: vec!["app:s3cret".parse::<OAuthClient>().unwrap()],
        oauth_token_ttl_secs: ttl_secs,
        ..Config::ephemeral()
    }
}

const SCOPE: &str = "https://monitor.azure.com/.default";

async fn get_token(sim: &SimHandle) -> String {
    let (status, body) = send(
        client()
            .post(format!("{}/tenant-1/oauth2/v2.0/token", sim.url()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "app"),
                ("client_secret", "s3cret"),
                ("scope", SCOPE),
            ]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().unwrap().to_owned()
}

fn upload(sim: &SimHandle, token: Option<&str>, records: &Value) -> RequestBuilder {
    let mut req = client()
        .post(format!(
            "{}/dataCollectionRules/dcr-123/streams/Custom-ELS_CL?api-version=2023-01-01",
            sim.url()
        ))
        .json(records);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749() {
    let sim = start(oauth_config(30)).await;
    let url = format!("{}/tenant-1/oauth2/v2.0/token", sim.url());
    let resp = client()
        .post(&url)
        .form(&[("grant_type", "client_credentials"), ("scope", SCOPE)])
        .basic_auth("app", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 30);
    let cases = [
        (
            vec![
                ("grant_type", "password"),
                ("client_id", "app"),
                ("client_secret", "s3cret"),
                ("scope", SCOPE),
            ],
            400,
            "unsupported_grant_type",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "app"),
                ("client_secret", "nope"),
                ("scope", SCOPE),
            ],
            401,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "app"),
                ("scope", SCOPE),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![("client_id", "app"), ("client_secret", "s3cret")],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "app"),
                ("client_secret", "s3cret"),
                ("scope", "x"),
            ],
            400,
            "invalid_scope",
        ),
    ];
    for (form, status, error) in cases {
        let (got, body) = send(client().post(&url).form(&form)).await;
        assert_eq!(
            (got.as_u16(), body["error"].as_str()),
            (status, Some(error)),
            "{form:?}"
        );
    }
    // v1 endpoint, without tenant, with `resource`.
    let (status, _) = send(client().post(format!("{}/oauth2/token", sim.url())).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "app"),
        ("client_secret", "s3cret"),
        ("resource", "https://monitor.azure.com"),
    ]))
    .await;
    assert_eq!(status, StatusCode::OK);
    let stats = stats(&sim).await;
    assert_eq!(stats["oauth_tokens_issued"], 2);
    assert_eq!(stats["oauth_token_errors"], 5);
    assert_eq!(stats["receivers"]["oauth_token"]["requests"], 7);
    // Token requests are not ingest requests.
    assert_eq!(stats["requests"], 0);
}

#[tokio::test]
async fn logs_ingestion_tokens_expire_and_fresh_ones_work() {
    let sim = start(oauth_config(1)).await;
    let records =
        json!([{"event_id": "l0", "TimeGenerated": "2026-01-01T00:00:00Z"}, {"event_id": "l1"}]);
    let (status, _) = send(upload(&sim, None, &records)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(upload(&sim, Some(DEFAULT_TOKEN), &records)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "static tokens are not Entra tokens"
    );
    let token = get_token(&sim).await;
    let resp = upload(&sim, Some(&token), &records).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.bytes().await.unwrap().is_empty());
    // The same token on the batched generic endpoint.
    let (status, _) = send(
        batch(&sim, "array", Some(&format!("Bearer {token}"))).json(&json!([{"event_id": "h0"}])),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let no_version = client()
        .post(format!(
            "{}/dataCollectionRules/dcr-123/streams/Custom-ELS_CL",
            sim.url()
        ))
        .bearer_auth(&token)
        .json(&records);
    let (status, body) = send(no_version).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "MissingApiVersionParameter");
    let (status, _) = send(upload(&sim, Some(&token), &json!({"not": "an array"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let resp = upload(&sim, Some(&token), &json!([{"event_id": "late"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let (status, _) = send(
        batch(&sim, "array", Some(&format!("Bearer {token}"))).json(&json!([{"event_id": "late"}])),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let fresh = get_token(&sim).await;
    let (status, _) = send(upload(&sim, Some(&fresh), &json!([{"event_id": "l2"}]))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    assert_eq!(sim.sim().event_ids(), ["l0", "l1", "h0", "l2"]);
    let stats = stats(&sim).await;
    assert_eq!(stats["oauth_tokens_issued"], 2);
    assert_eq!(stats["oauth_expired_tokens"], 2);
    assert_eq!(stats["oauth_unknown_tokens"], 1);
    assert_eq!(
        stats["receivers"]["logs_ingestion"]["by_status"],
        json!({"204": 2, "400": 2, "401": 3})
    );
}

#[tokio::test]
async fn logs_ingestion_faults_answer_azure_errors() {
    let sim = start(oauth_config(60)).await;
    let token = get_token(&sim).await;
    put_faults(
        &sim,
        json!({"status": 429, "fail_next": 1, "retry_after": "5"}),
    )
    .await;
    let resp = upload(&sim, Some(&token), &json!([{"event_id": "r"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "5");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TooManyRequests");
    let big = json!([{"event_id": "b", "pad": "p".repeat(1_100_000)}]);
    let (status, body) = send(upload(&sim, Some(&token), &big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "ContentLengthLimitExceeded");
    let (status, _) = send(upload(&sim, Some(&token), &json!([{"event_id": "r"}]))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(sim.sim().event_ids(), ["r"]);
}
