//! The admin router, built from one route table ([`routes`]): each entry names its method,
//! path, who may call it ([`Access`]), whether it is audited, and its handler. Every route
//! but the public ones gets the auth layer ([`super::auth::guard`]) here, so a handler never
//! checks the token, the role or a path or query org itself; the test below walks the table
//! and proves every `/v1` and `/console/api` route answers 401 without a token, and
//! `access_matrix.rs` walks it with every kind of token.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

use super::{
    audit, auth, console, dead_letters, health, openapi, settings, status, test_event, tokens,
    Admin,
};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Probes, metrics, the OpenAPI document and the console's static files.
    Public,
    /// Any valid token, within its orgs (viewers included).
    Read,
    /// Super and org admins, within their orgs.
    Write,
    /// Super admins only (token management).
    SuperAdmin,
}

/// One method on one path.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    /// The audit trail's name for what the route does; `None`: not recorded (reads).
    pub action: Option<&'static str>,
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
            action: None,
            endpoint: on(filter, handler),
        }
    }

    /// Record every call in the audit trail as `action`.
    fn audited(mut self, action: &'static str) -> Self {
        self.action = Some(action);
        self
    }

    /// Cap the request body at `bytes`.
    fn body_limit(mut self, bytes: usize) -> Self {
        self.endpoint = self.endpoint.layer(DefaultBodyLimit::max(bytes));
        self
    }
}

/// Every route of the admin server.
pub fn routes() -> Vec<Route> {
    use Access::{Public, Read, SuperAdmin, Write};
    use Method as M;
    let settings_body = settings::MAX_BODY_BYTES;
    vec![
        Route::new(M::GET, "/metrics", Public, health::metrics),
        Route::new(M::GET, "/healthz", Public, health::live),
        Route::new(M::GET, "/readyz", Public, health::ready),
        Route::new(M::GET, "/openapi.json", Public, openapi::serve),
        Route::new(M::GET, "/v1/dead-letters", Read, dead_letters::list),
        Route::new(M::DELETE, "/v1/dead-letters", Write, dead_letters::purge)
            .audited("dead_letters.purge"),
        Route::new(
            M::POST,
            "/v1/dead-letters/replay",
            Write,
            dead_letters::replay,
        )
        .audited("dead_letters.replay"),
        Route::new(M::GET, "/v1/dead-letters/{id}", Read, dead_letters::show),
        Route::new(
            M::DELETE,
            "/v1/dead-letters/{id}",
            Write,
            dead_letters::purge_one,
        )
        .audited("dead_letters.purge"),
        Route::new(M::GET, "/v1/orgs", Read, settings::list).body_limit(settings_body),
        Route::new(M::GET, "/v1/orgs/{org}/settings", Read, settings::show)
            .body_limit(settings_body),
        Route::new(M::PUT, "/v1/orgs/{org}/settings", Write, settings::put)
            .body_limit(settings_body)
            .audited("settings.put"),
        Route::new(
            M::DELETE,
            "/v1/orgs/{org}/settings",
            Write,
            settings::delete,
        )
        .body_limit(settings_body)
        .audited("settings.delete"),
        Route::new(M::POST, "/v1/orgs/{org}/test", Write, test_event::post)
            .body_limit(settings_body)
            .audited("test_event"),
        Route::new(
            M::GET,
            "/v1/orgs/{org}/streams",
            Read,
            settings::list_streams,
        ),
        Route::new(
            M::GET,
            "/v1/orgs/{org}/streams/{stream}",
            Read,
            settings::show_stream,
        ),
        Route::new(
            M::PUT,
            "/v1/orgs/{org}/streams/{stream}",
            Write,
            settings::put_stream,
        )
        .body_limit(settings_body)
        .audited("streams.put"),
        Route::new(
            M::DELETE,
            "/v1/orgs/{org}/streams/{stream}",
            Write,
            settings::delete_stream,
        )
        .audited("streams.delete"),
        Route::new(
            M::POST,
            "/v1/orgs/{org}/streams/{stream}/test",
            Write,
            test_event::post_stream,
        )
        .body_limit(settings_body)
        .audited("test_event"),
        Route::new(
            M::GET,
            "/v1/orgs/{org}/streams/{stream}/status",
            Read,
            status::show_stream,
        ),
        Route::new(
            M::POST,
            "/v1/orgs/{org}/streams/{stream}/pause",
            Write,
            status::pause_stream,
        )
        .body_limit(settings_body)
        .audited("streams.pause"),
        Route::new(
            M::POST,
            "/v1/orgs/{org}/streams/{stream}/resume",
            Write,
            status::resume_stream,
        )
        .body_limit(settings_body)
        .audited("streams.resume"),
        Route::new(M::GET, "/v1/whoami", Read, tokens::whoami),
        Route::new(M::GET, "/v1/tokens", SuperAdmin, tokens::list),
        Route::new(M::POST, "/v1/tokens", SuperAdmin, tokens::create)
            .body_limit(tokens::MAX_BODY_BYTES)
            .audited("tokens.create"),
        Route::new(M::DELETE, "/v1/tokens/{id}", SuperAdmin, tokens::revoke)
            .audited("tokens.revoke"),
        Route::new(M::GET, "/v1/audit", Read, audit::list),
        Route::new(M::GET, "/v1/status", Read, status::list),
        Route::new(M::GET, "/v1/orgs/{org}/status", Read, status::show),
        Route::new(M::POST, "/v1/orgs/{org}/pause", Write, status::pause)
            .body_limit(settings_body)
            .audited("streams.pause"),
        Route::new(M::POST, "/v1/orgs/{org}/resume", Write, status::resume)
            .body_limit(settings_body)
            .audited("streams.resume"),
        Route::new(
            M::GET,
            "/v1/orgs/{org}/stream-events",
            Read,
            status::notices,
        ),
        Route::new(M::GET, "/console", Public, console::page),
        Route::new(M::GET, "/console/", Public, console::to_page),
        Route::new(M::GET, "/console/console.js", Public, console::script),
        Route::new(M::GET, "/console/console.css", Public, console::style),
        Route::new(
            M::GET,
            "/console/api/dead-letters",
            Read,
            console::dead_letters,
        ),
    ]
}

/// The admin router: [`routes`], the auth layer on each route that is not
/// [`Access::Public`] (a wrong method still answers 405, an unknown path 404).
pub fn router(admin: Arc<Admin>) -> Router {
    let mut router = Router::new();
    for route in routes() {
        let endpoint = match route.access {
            Access::Public => route.endpoint,
            access => route.endpoint.route_layer(middleware::from_fn_with_state(
                auth::Guard {
                    admin: admin.clone(),
                    access,
                    action: route.action,
                },
                auth::guard,
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
        assert!(table.len() >= 22, "the table lists every route");
        for route in &table {
            let guarded = route.path.starts_with("/v1/") || route.path.starts_with("/console/api/");
            assert_eq!(
                route.access != Access::Public,
                guarded,
                "{} {}: /v1 and /console/api routes take a token, others are public",
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
