//! Test helpers of the admin room: an admin server on 127.0.0.1:0 over test services
//! (file-only settings, a state store in a temp directory, no Kafka needed).

use std::sync::Arc;

use els_model::settings::OrgSettings;
use serde_json::Value;

use super::Admin;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::services::Services;
use crate::settings::SettingsStore;
use crate::state::StateStore;

pub const TOKEN: &str = "unit-test-admin-token";

/// A state store in a fresh temp directory, and the directory.
pub fn temp_store(prefix: &str) -> (StateStore, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    (StateStore::open(&dir).unwrap(), dir)
}

/// The admin state over test services with `settings` and `store` (default configuration:
/// strict SSRF guard, token [`TOKEN`]).
pub fn admin(settings: SettingsStore, store: StateStore) -> Arc<Admin> {
    let services = Services::new(&Config::default(), settings, store, Metrics::new()).unwrap();
    Arc::new(Admin::new(services, TOKEN.into(), "127.0.0.1:1", "els.events").unwrap())
}

/// Serve `admin`'s router on 127.0.0.1:0; its base URL.
pub async fn serve(admin: Arc<Admin>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, super::router(admin)).await });
    format!("http://{addr}")
}

/// An admin server with file-only (read-only) `settings` and an empty state store.
pub async fn serve_settings(settings: SettingsStore) -> String {
    let (store, _dir) = temp_store("els-api");
    serve(admin(settings, store)).await
}

pub async fn call(
    method: reqwest::Method,
    url: &str,
    body: Option<Vec<u8>>,
    token: &str,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(b) = body {
        request = request.body(b);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Settings with org-1 on a loopback HEC URL and a canary secret.
pub fn stored() -> SettingsStore {
    let store = SettingsStore::default();
    let mut s = OrgSettings::hec("http://127.0.0.1:9/services/collector/event", "CANARY-7f3a");
    s.allow_http = true;
    store.put("org-1", s).unwrap();
    store
}
