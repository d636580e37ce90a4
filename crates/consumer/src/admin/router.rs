//! The admin router, built from one route table ([`routes`]): each entry names its method,
//! path, who may call it and its handler. Every [`Access::Token`] route gets the token layer
//! ([`super::auth::require_token`]) here, so a handler never checks the token itself; the
//! test below walks the table and proves every `/v1` and `/console/api` route answers 401
//! without a token.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

use super::{auth, console, dead_letters, health, settings, status, test_event, Admin};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Probes, metrics and the console's static files.
    Public,
    /// Only with the admin bearer token.
    Token,
}

/// One method on one path.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    endpoint: MethodRouter<Arc<Admin>>,
}

impl Route {
    fn new<H, T>(method: Method, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, Arc<Admin>>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone())
            .expect("admin routes use GET, PUT, POST or DELETE");
        Self {
            method,
            path,
            access,
            endpoint: on(filter, handler),
        }
    }

    /// Cap the request body at `bytes`.
    fn body_limit(mut self, bytes: usize) -> Self {
        self.endpoint = self.endpoint.layer(DefaultBodyLimit::max(bytes));
        self
    }
}

/// Every route of the admin server.
pub fn routes() -> Vec<Route> {
    use Access::{Public, Token};
    use Method as M;
    let settings_body = settings::MAX_BODY_BYTES;
    vec![
        Route::new(M::GET, "/metrics", Public, health::metrics),
        Route::new(M::GET, "/healthz", Public, health::live),
        Route::new(M::GET, "/readyz", Public, health::ready),
        Route::new(M::GET, "/v1/dead-letters", Token, dead_letters::list),
        Route::new(M::DELETE, "/v1/dead-letters", Token, dead_letters::purge),
        Route::new(
            M::POST,
            "/v1/dead-letters/replay",
            Token,
            dead_letters::replay,
        ),
        Route::new(M::GET, "/v1/dead-letters/{id}", Token, dead_letters::show),
        Route::new(
            M::DELETE,
            "/v1/dead-letters/{id}",
            Token,
            dead_letters::purge_one,
        ),
        Route::new(M::GET, "/v1/orgs", Token, settings::list).body_limit(settings_body),
        Route::new(M::GET, "/v1/orgs/{org}/settings", Token, settings::show)
            .body_limit(settings_body),
        Route::new(M::PUT, "/v1/orgs/{org}/settings", Token, settings::put)
            .body_limit(settings_body),
        Route::new(
            M::DELETE,
            "/v1/orgs/{org}/settings",
            Token,
            settings::delete,
        )
        .body_limit(settings_body),
        Route::new(M::POST, "/v1/orgs/{org}/test", Token, test_event::post)
            .body_limit(settings_body),
        Route::new(M::GET, "/v1/status", Token, status::list),
        Route::new(M::GET, "/v1/orgs/{org}/status", Token, status::show),
        Route::new(M::POST, "/v1/orgs/{org}/pause", Token, status::pause).body_limit(settings_body),
        Route::new(M::POST, "/v1/orgs/{org}/resume", Token, status::resume)
            .body_limit(settings_body),
        Route::new(
            M::GET,
            "/v1/orgs/{org}/stream-events",
            Token,
            status::notices,
        ),
        Route::new(M::GET, "/console", Public, console::page),
        Route::new(M::GET, "/console/", Public, console::to_page),
        Route::new(M::GET, "/console/console.js", Public, console::script),
        Route::new(M::GET, "/console/console.css", Public, console::style),
        Route::new(
            M::GET,
            "/console/api/dead-letters",
            Token,
            console::dead_letters,
        ),
    ]
}

/// The admin router: [`routes`], the token layer on each [`Access::Token`] route (a wrong
/// method still answers 405, an unknown path 404).
pub fn router(admin: Arc<Admin>) -> Router {
    let mut router = Router::new();
    for route in routes() {
        let endpoint = match route.access {
            Access::Public => route.endpoint,
            Access::Token => route.endpoint.route_layer(middleware::from_fn_with_state(
                admin.clone(),
                auth::require_token,
            )),
        };
        router = router.route(route.path, endpoint);
    }
    router.with_state(admin)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, TOKEN};
    use super::*;
    use crate::settings::SettingsStore;

    /// A path of the table with its parameters filled in.
    fn concrete(path: &str) -> String {
        path.replace("{org}", "org-1").replace("{id}", "1")
    }

    #[tokio::test]
    async fn every_v1_and_console_api_route_needs_the_token() {
        let (store, dir) = testing::temp_store("els-routes");
        let base = testing::serve(testing::admin(testing::stored(), store)).await;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let table = routes();
        assert!(table.len() >= 17, "the table lists every route");
        for route in &table {
            let guarded = route.path.starts_with("/v1/") || route.path.starts_with("/console/api/");
            assert_eq!(
                route.access == Access::Token,
                guarded,
                "{} {}: /v1 and /console/api routes take the token, others are public",
                route.method,
                route.path
            );
            let url = format!("{base}{}", concrete(route.path));
            let request = || client.request(route.method.clone(), &url);
            let anonymous = request().send().await.unwrap();
            let status = anonymous.status().as_u16();
            if guarded {
                assert_eq!(
                    status, 401,
                    "{} {} without a token",
                    route.method, route.path
                );
                let body: serde_json::Value = anonymous.json().await.unwrap();
                assert_eq!(body["field"], "Authorization", "{}", route.path);
                let wrong = request().bearer_auth("not-the-token").send().await.unwrap();
                assert_eq!(
                    wrong.status(),
                    401,
                    "{} {} with a wrong token",
                    route.method,
                    route.path
                );
            } else {
                assert_ne!(status, 401, "{} {} is public", route.method, route.path);
                assert_ne!(status, 404, "{} {} is routed", route.method, route.path);
            }
        }
        // With the token, a guarded route is reached (and a wrong method is still a 405).
        let orgs = client
            .get(format!("{base}/v1/orgs"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(orgs.status(), 200);
        let wrong_method = client
            .patch(format!("{base}/v1/orgs"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong_method.status(), 405);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn without_a_configured_token_the_api_is_disabled() {
        let (store, dir) = testing::temp_store("els-routes");
        let services = crate::services::Services::new(
            &crate::config::Config::default(),
            SettingsStore::default(),
            store,
            crate::metrics::Metrics::new(),
        )
        .unwrap();
        let admin =
            Arc::new(Admin::new(services, String::new(), "127.0.0.1:1", "els.events").unwrap());
        let base = testing::serve(admin).await;
        let r = reqwest::get(format!("{base}/v1/orgs")).await.unwrap();
        assert_eq!(r.status(), 403);
        let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
        assert_eq!(r.status(), 200);
        let _ = std::fs::remove_dir_all(dir);
    }
}
