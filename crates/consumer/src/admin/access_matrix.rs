//! The access matrix: every route of the table × every kind of caller (no token, a wrong,
//! an expired and a revoked one, a viewer and an admin of org A, an admin of org B, the
//! super admin), each on a fresh server with settings and a dead letter for org A and org B.
//! A route missing from [`request_for`] fails the test, so a new route cannot skip it.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use els_api::{DeadLetterV1, Reason, Role};
use serde_json::{json, Value};

use super::router::{routes, Access, Route};
use super::testing::{self, TOKEN};
use super::Admin;
use crate::access::TokenRecordV1;
use crate::settings::SettingsStore;
use els_model::settings::OrgSettings;

const A: &str = "org-a";
const B: &str = "org-b";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Wrong,
    Expired,
    Revoked,
    ViewerA,
    AdminA,
    AdminB,
    Super,
}

const CALLERS: [Caller; 8] = [
    Caller::Anonymous,
    Caller::Wrong,
    Caller::Expired,
    Caller::Revoked,
    Caller::ViewerA,
    Caller::AdminA,
    Caller::AdminB,
    Caller::Super,
];

/// A server with org A's and org B's settings and one dead letter each, and a secret per
/// caller (empty: none). Returns the base URL, the secrets, the dead-letter ids (A, B), the
/// id of a token to revoke, and the admin state.
struct World {
    base: String,
    admin: Arc<Admin>,
    dead_a: u64,
    dead_b: u64,
    token_id: String,
    secrets: Vec<(Caller, String)>,
    _dir: Dir,
}

struct Dir(std::path::PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dead_letter(org: &str, offset: i64) -> DeadLetterV1 {
    let at: DateTime<Utc> = Utc::now();
    DeadLetterV1 {
        id: 0,
        org_id: org.into(),
        stream: "default".into(),
        event: json!({"event_id": "e", "org_id": org}),
        reason: Reason::Rejected,
        attempts: 1,
        last_status: Some(403),
        last_error: format!("refused for {org}"),
        first_failed_at: at,
        last_failed_at: at,
        partition: 0,
        offset,
    }
}

fn issue(admin: &Admin, role: Role, orgs: &[&str], ttl: i64) -> (TokenRecordV1, String) {
    let orgs: BTreeSet<String> = orgs.iter().map(|o| o.to_string()).collect();
    let (record, secret) = TokenRecordV1::issue(
        role,
        orgs,
        Utc::now() + chrono::Duration::seconds(ttl),
        "bootstrap",
        "",
    );
    admin
        .tokens()
        .apply(&record.id.clone(), Some(record.clone()));
    (record, secret)
}

async fn world() -> World {
    let settings = SettingsStore::default();
    for org in [A, B] {
        let mut s = OrgSettings::hec("http://127.0.0.1:9/services/collector/event", "CANARY-7f3a");
        s.allow_http = true;
        settings.put(org, s).unwrap();
    }
    let (store, dir) = testing::temp_store("els-matrix");
    let ids = store
        .dead_letters()
        .put(vec![dead_letter(A, 1), dead_letter(B, 2)])
        .await
        .unwrap();
    let admin = testing::admin(settings, store);
    let (_, viewer_a) = issue(&admin, Role::OrgViewer, &[A], 3600);
    let (target, admin_a) = issue(&admin, Role::OrgAdmin, &[A], 3600);
    let (_, admin_b) = issue(&admin, Role::OrgAdmin, &[B], 3600);
    let (_, expired) = issue(&admin, Role::OrgAdmin, &[A], -1);
    let (mut gone, revoked) = issue(&admin, Role::SuperAdmin, &[], 3600);
    gone.revoked_at = Some(Utc::now());
    admin.tokens().apply(&gone.id.clone(), Some(gone));
    let secrets = vec![
        (Caller::Anonymous, String::new()),
        (
            Caller::Wrong,
            "els_0000000000000000000000000000000000000000000000000000000000000000".into(),
        ),
        (Caller::Expired, expired),
        (Caller::Revoked, revoked),
        (Caller::ViewerA, viewer_a),
        (Caller::AdminA, admin_a),
        (Caller::AdminB, admin_b),
        (Caller::Super, TOKEN.to_string()),
    ];
    World {
        base: testing::serve(admin.clone()).await,
        admin,
        dead_a: ids[0],
        dead_b: ids[1],
        token_id: target.id,
        secrets,
        _dir: Dir(dir),
    }
}

/// The request that makes `route` touch `org` (path, query or body; `dead` is a dead letter
/// of `org`): (path and query, body, whether it names the org).
fn request_for(
    route: &Route,
    org: &str,
    dead: u64,
    token_id: &str,
) -> (String, Option<Value>, bool) {
    let settings = json!({"url": "http://127.0.0.1:9/x", "allow_http": true});
    match (route.method.as_str(), route.path) {
        ("GET", "/v1/dead-letters") => (format!("/v1/dead-letters?org={org}"), None, true),
        ("DELETE", "/v1/dead-letters") => (format!("/v1/dead-letters?org={org}"), None, true),
        ("POST", "/v1/dead-letters/replay") => (
            "/v1/dead-letters/replay".into(),
            // Matches nothing: nothing is sent to the (absent) broker.
            Some(json!({"org": org, "reason": "too_large"})),
            true,
        ),
        ("GET", "/v1/dead-letters/{id}") => (format!("/v1/dead-letters/{dead}"), None, true),
        ("DELETE", "/v1/dead-letters/{id}") => (format!("/v1/dead-letters/{dead}"), None, true),
        ("GET", "/v1/orgs") => ("/v1/orgs".into(), None, false),
        ("GET", "/v1/orgs/{org}/settings") => (format!("/v1/orgs/{org}/settings"), None, true),
        ("PUT", "/v1/orgs/{org}/settings") => {
            (format!("/v1/orgs/{org}/settings"), Some(settings), true)
        }
        ("DELETE", "/v1/orgs/{org}/settings") => (format!("/v1/orgs/{org}/settings"), None, true),
        ("POST", "/v1/orgs/{org}/test") => (format!("/v1/orgs/{org}/test"), Some(json!({})), true),
        ("GET", "/v1/orgs/{org}/streams") => (format!("/v1/orgs/{org}/streams"), None, true),
        ("GET", "/v1/orgs/{org}/streams/{stream}") => {
            (format!("/v1/orgs/{org}/streams/default"), None, true)
        }
        ("PUT", "/v1/orgs/{org}/streams/{stream}") => (
            format!("/v1/orgs/{org}/streams/default"),
            Some(settings),
            true,
        ),
        ("DELETE", "/v1/orgs/{org}/streams/{stream}") => {
            (format!("/v1/orgs/{org}/streams/default"), None, true)
        }
        ("POST", "/v1/orgs/{org}/streams/{stream}/test") => (
            format!("/v1/orgs/{org}/streams/default/test"),
            Some(json!({})),
            true,
        ),
        ("GET", "/v1/orgs/{org}/streams/{stream}/status") => {
            (format!("/v1/orgs/{org}/streams/default/status"), None, true)
        }
        ("POST", "/v1/orgs/{org}/streams/{stream}/pause") => (
            format!("/v1/orgs/{org}/streams/default/pause"),
            Some(json!({})),
            true,
        ),
        ("POST", "/v1/orgs/{org}/streams/{stream}/resume") => (
            format!("/v1/orgs/{org}/streams/default/resume"),
            Some(json!({})),
            true,
        ),
        ("GET", "/v1/whoami") => ("/v1/whoami".into(), None, false),
        ("GET", "/v1/tokens") => ("/v1/tokens".into(), None, false),
        ("POST", "/v1/tokens") => (
            "/v1/tokens".into(),
            Some(json!({"role": "org_viewer", "orgs": [org], "ttl_secs": 3600})),
            true,
        ),
        ("DELETE", "/v1/tokens/{id}") => (format!("/v1/tokens/{token_id}"), None, false),
        ("GET", "/v1/audit") => (format!("/v1/audit?org={org}"), None, true),
        ("GET", "/v1/status") => ("/v1/status".into(), None, false),
        ("GET", "/v1/orgs/{org}/status") => (format!("/v1/orgs/{org}/status"), None, true),
        ("POST", "/v1/orgs/{org}/pause") => {
            (format!("/v1/orgs/{org}/pause"), Some(json!({})), true)
        }
        ("POST", "/v1/orgs/{org}/resume") => {
            (format!("/v1/orgs/{org}/resume"), Some(json!({})), true)
        }
        ("GET", "/v1/orgs/{org}/stream-events") => {
            (format!("/v1/orgs/{org}/stream-events"), None, true)
        }
        ("GET", "/console/api/dead-letters") => {
            (format!("/console/api/dead-letters?org={org}"), None, true)
        }
        (method, path) => panic!("{method} {path}: add it to the access matrix"),
    }
}

/// What `caller` must get from a route of `access` that touches org A (if `names_org`).
fn expected(caller: Caller, access: Access, names_org: bool, by_id: bool) -> &'static str {
    match caller {
        Caller::Anonymous | Caller::Wrong | Caller::Expired | Caller::Revoked => "401",
        Caller::Super => "allowed",
        Caller::ViewerA if access != Access::Read => "403",
        Caller::AdminA if access == Access::SuperAdmin => "403",
        Caller::ViewerA | Caller::AdminA => "allowed",
        Caller::AdminB if access == Access::SuperAdmin => "403",
        // Another org's dead letter by id does not exist for it.
        Caller::AdminB if names_org && by_id => "404",
        Caller::AdminB if names_org => "403",
        Caller::AdminB => "allowed",
    }
}

async fn send(
    base: &str,
    method: &axum::http::Method,
    path: &str,
    body: Option<Value>,
    secret: &str,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
    let mut request = reqwest::Client::new().request(method, format!("{base}{path}"));
    if !secret.is_empty() {
        request = request.bearer_auth(secret);
    }
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
#[allow(clippy::print_stdout)] // the matrix's size is the test's report
async fn every_route_times_every_caller() {
    let table: Vec<Route> = routes()
        .into_iter()
        .filter(|r| r.access != Access::Public)
        .collect();
    let mut cells = 0;
    let mut tally = std::collections::BTreeMap::<&str, usize>::new();
    for route in &table {
        for caller in CALLERS {
            // A fresh world per cell: a purge or a revoke cannot change the next cell.
            let w = world().await;
            let secret = &w.secrets.iter().find(|(c, _)| *c == caller).unwrap().1;
            let (path, body, names_org) = request_for(route, A, w.dead_a, &w.token_id);
            let (status, answer) = send(&w.base, &route.method, &path, body, secret).await;
            let want = expected(
                caller,
                route.access,
                names_org,
                route.path.contains("{id}") && route.path.starts_with("/v1/dead-letters"),
            );
            let cell = format!(
                "{} {} as {caller:?}: {status} {answer}",
                route.method, route.path
            );
            match want {
                "allowed" => {
                    assert!(![401, 403].contains(&status), "{cell}: expected allowed");
                    assert!(status < 500 || status == 503, "{cell}");
                }
                "401" => {
                    assert_eq!(status, 401, "{cell}");
                    assert_eq!(answer["field"], "Authorization", "{cell}");
                }
                "403" => {
                    assert_eq!(status, 403, "{cell}");
                    assert!(
                        answer["message"].as_str().is_some_and(|m| !m.is_empty()),
                        "{cell}"
                    );
                    assert_eq!(answer["error"], "Forbidden", "{cell}");
                }
                "404" => assert_eq!(status, 404, "{cell}"),
                _ => unreachable!(),
            }
            // No answer carries a token secret or its hash (but the one issuing a token, which
            // shows only its own new secret).
            for (_, secret) in &w.secrets {
                if let Some(random) = secret.strip_prefix("els_") {
                    let hash = crate::access::token::hash_secret(secret);
                    let text = answer.to_string();
                    assert!(
                        !text.contains(random) && !text.contains(&hash),
                        "{cell}: a secret"
                    );
                }
            }
            // Whatever it was allowed to do, org B's records are untouched and unseen.
            if caller != Caller::Super {
                assert!(
                    !answer.to_string().contains(B) || caller == Caller::AdminB,
                    "{cell}: leaks {B}"
                );
                assert!(w.admin.settings().get_own(B).is_some());
                assert!(
                    w.admin
                        .services
                        .dead_letters()
                        .get(w.dead_b)
                        .unwrap()
                        .is_some(),
                    "{cell}"
                );
            }
            *tally.entry(want).or_default() += 1;
            cells += 1;
        }
    }
    println!(
        "access matrix: {} routes x {} callers = {cells} cells: {tally:?}",
        table.len(),
        CALLERS.len()
    );
    assert_eq!(cells, table.len() * CALLERS.len());
}

/// Org A's admin, on requests that name no org or that name org B: never sees or changes
/// anything of org B.
#[tokio::test]
async fn an_org_admin_never_reaches_another_org() {
    let w = world().await;
    let secret = &w
        .secrets
        .iter()
        .find(|(c, _)| *c == Caller::AdminA)
        .unwrap()
        .1;
    let get = |path: &'static str| send(&w.base, &axum::http::Method::GET, path, None, secret);
    let (status, orgs) = get("/v1/orgs").await;
    assert_eq!((status, orgs), (200, json!({"orgs": [A]})));
    let (status, list) = get("/v1/dead-letters").await;
    assert_eq!(status, 200);
    assert_eq!(
        (list["total"].clone(), list["matched"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(list["items"][0]["org_id"], A);
    // Naming its org and another one in the query does not get past the layer.
    let (status, _) = get("/v1/dead-letters?org=org-a&org=org-b").await;
    assert_eq!(status, 403);
    let (status, summary) = get("/console/api/dead-letters?org=org-a").await;
    assert_eq!((status, summary["total"].clone()), (200, json!(1)));
    // Every route on org B, as org A's admin.
    for route in routes().into_iter().filter(|r| r.access != Access::Public) {
        let (path, body, names_org) = request_for(&route, B, w.dead_b, &w.token_id);
        if !names_org {
            continue;
        }
        let (status, answer) = send(&w.base, &route.method, &path, body, secret).await;
        assert!(
            [403, 404].contains(&status),
            "{} {path}: {status} {answer}",
            route.method
        );
        assert!(!answer.to_string().contains("refused for org-b"));
    }
    // A purge without a filter purges only org A's.
    let (status, purged) = send(
        &w.base,
        &axum::http::Method::DELETE,
        "/v1/dead-letters",
        None,
        secret,
    )
    .await;
    assert_eq!(
        (status, purged),
        (200, json!({"purged": 1, "remaining": 0}))
    );
    assert!(w
        .admin
        .services
        .dead_letters()
        .get(w.dead_b)
        .unwrap()
        .is_some());
    assert!(w
        .admin
        .services
        .dead_letters()
        .get(w.dead_a)
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn changes_are_audited_and_the_trail_is_scoped() {
    let w = world().await;
    let secret = |c: Caller| w.secrets.iter().find(|(k, _)| *k == c).unwrap().1.clone();
    let (admin_a, admin_b) = (secret(Caller::AdminA), secret(Caller::AdminB));
    let m = axum::http::Method::DELETE;
    send(
        &w.base,
        &m,
        &format!("/v1/orgs/{A}/settings"),
        None,
        &admin_a,
    )
    .await;
    send(
        &w.base,
        &m,
        &format!("/v1/orgs/{B}/settings"),
        None,
        &admin_a,
    )
    .await;
    send(
        &w.base,
        &m,
        &format!("/v1/dead-letters/{}", w.dead_b),
        None,
        &admin_b,
    )
    .await;
    let get = |s: String, q: &'static str| {
        let base = w.base.clone();
        async move { send(&base, &axum::http::Method::GET, q, None, &s).await }
    };
    let (status, all) = get(TOKEN.to_string(), "/v1/audit").await;
    assert_eq!(status, 200);
    let entries = all["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{all}");
    // Newest first: B's purge, A's refused delete of B, A's delete of A.
    assert_eq!(entries[0]["action"], "dead_letters.purge");
    assert_eq!(entries[0]["org"], B);
    assert_eq!(entries[0]["outcome"], "ok");
    assert_eq!(entries[1]["outcome"], "denied");
    assert_eq!(entries[1]["status"], 403);
    assert_eq!(entries[2]["action"], "settings.delete");
    assert_eq!(entries[2]["org"], A);
    let a_id = w
        .admin
        .tokens()
        .authenticate(TOKEN, &admin_a)
        .unwrap()
        .token_id;
    assert_eq!(entries[2]["token_id"], a_id.as_str());
    // The secret is never in the trail.
    assert!(!all.to_string().contains(&admin_a) && !all.to_string().contains(&admin_b));
    let (_, mine) = get(admin_a.clone(), "/v1/audit").await;
    let orgs: Vec<&str> = mine["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["org"].as_str().unwrap())
        .collect();
    // Its own delete of A; its refused try on B is org B's entry, not shown to it.
    assert_eq!(orgs, [A], "{mine}");
    let (status, _) = get(admin_a, "/v1/audit?org=org-b").await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn whoami_tells_role_orgs_and_expiry() {
    let w = world().await;
    let secret = &w
        .secrets
        .iter()
        .find(|(c, _)| *c == Caller::ViewerA)
        .unwrap()
        .1;
    let (status, me) = send(
        &w.base,
        &axum::http::Method::GET,
        "/v1/whoami",
        None,
        secret,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            me["role"].clone(),
            me["orgs"].clone(),
            me["can_write"].clone()
        ),
        (json!("org_viewer"), json!([A]), json!(false))
    );
    assert!(me["token_id"].as_str().unwrap().starts_with("tok_") && me["expires_at"].is_string());
    let (_, boot) = send(&w.base, &axum::http::Method::GET, "/v1/whoami", None, TOKEN).await;
    assert_eq!(
        (boot["token_id"].clone(), boot["role"].clone()),
        (json!("bootstrap"), json!("super_admin"))
    );
}
