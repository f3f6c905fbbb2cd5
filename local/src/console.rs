//! The clinician console (the browser app built from `console/`) served by the local HTTP API at
//! `/console/`, on the API's own origin as CloudFront serves it beside the API on AWS, so that
//! the console calls the API and signs in ([`crate::hosted_ui`]) without CORS.
//!
//! - `GET /console` → 308 to `/console/` (the app's relative asset URLs need the slash);
//! - `GET /console/config.json`: generated, the local API and sign-in endpoints (on AWS a deploy
//!   script writes the same file with Cognito's);
//! - `GET /console/...`: the built files (tower-http's `ServeDir`); a path that is no file and
//!   has no extension gets `index.html`, so the app's own deep links load it; 503 with a hint
//!   while the console is not built (checked on each request: a build during `up` is served).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_http::services::{ServeDir, ServeFile};

use crate::hosted_ui::{AUTHORIZE_PATH, CONSOLE_PATH, LOGOUT_PATH, TOKEN_PATH};
use crate::http_api::{LOCAL_AUDIENCE, LOCAL_STAFF_ISSUER};

/// Where `vitalwire-local up` serves the console from unless told otherwise: the Vite build in
/// the repository.
pub fn default_dir() -> PathBuf {
    crate::repo_root().join("console/dist")
}

/// What the console is told about its environment (`/console/config.json`) for the HTTP API
/// at `api_url`: the API and the OAuth 2.0 endpoints of the local stand-in for Cognito.
pub fn config(api_url: &str) -> Value {
    json!({
        "apiUrl": api_url,
        "environment": "local",
        "auth": {
            "issuer": LOCAL_STAFF_ISSUER,
            "clientId": LOCAL_AUDIENCE,
            "authorizationEndpoint": format!("{api_url}{AUTHORIZE_PATH}"),
            "tokenEndpoint": format!("{api_url}{TOKEN_PATH}"),
            "endSessionEndpoint": format!("{api_url}{LOGOUT_PATH}"),
            "scope": "openid profile",
        },
    })
}

/// The console's files and generated configuration.
pub struct Console {
    dir: PathBuf,
    config: Value,
}

impl Console {
    /// The console built into `dir`, talking to the HTTP API at `api_url`.
    pub fn new(dir: PathBuf, api_url: &str) -> Arc<Self> {
        Arc::new(Self { dir, config: config(api_url) })
    }

    /// The routes under `/console`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/console", get(|| async { Redirect::permanent(CONSOLE_PATH) }))
            .route("/console/config.json", get(config_json))
            .route(CONSOLE_PATH, get(serve))
            .route("/console/{*path}", get(serve))
            .with_state(self)
    }
}

async fn config_json(State(console): State<Arc<Console>>) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(console.config.clone())).into_response()
}

fn not_built() -> Response {
    let html = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Vitalwire console not built</title></head>\
                <body><main><h1>Vitalwire console</h1><p>The console is not built: run scripts/dev-env.sh (it runs npm ci and the Vite build in console/)</p></main></body></html>\n";
    (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], html).into_response()
}

/// A path of the app rather than of a file: no extension in its last segment.
fn is_app_route(path: &str) -> bool {
    !path.rsplit('/').next().unwrap_or_default().contains('.')
}

/// `index.html`, never cached: it names the hashed asset files of the current build.
async fn index(dir: &Path, request: Request) -> Response {
    let mut response = match ServeFile::new(dir.join("index.html")).try_call(request).await {
        Ok(r) => r.map(Body::new).into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn serve(State(console): State<Arc<Console>>, request: Request) -> Response {
    if !console.dir.join("index.html").is_file() {
        return not_built();
    }
    let path = request.uri().path().strip_prefix("/console").unwrap_or("/").to_owned();
    if path == "/" {
        return index(&console.dir, request).await;
    }
    // ServeDir serves from the directory's root: the same request without `/console`.
    let (mut parts, body) = request.into_parts();
    let rest = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    parts.uri = match rest.parse::<Uri>() {
        Ok(uri) => uri,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let request = Request::from_parts(parts.clone(), body);
    // Directories are not listed nor redirected (ServeDir would redirect to its own view of
    // the path, without `/console`): they fall to the app like any other route.
    let served = ServeDir::new(&console.dir).append_index_html_on_directories(false).try_call(request).await;
    match served {
        Ok(r) if r.status() == StatusCode::NOT_FOUND && is_app_route(&path) => index(&console.dir, Request::from_parts(parts, Body::empty())).await,
        Ok(r) => r.map(Body::new).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_routes_have_no_extension() {
        assert!(is_app_route("/patients/P1"));
        assert!(is_app_route("/assets"));
        assert!(!is_app_route("/assets/app.js"));
        assert!(!is_app_route("/favicon.ico"));
    }

    #[test]
    fn config_names_the_local_endpoints() {
        let c = config("http://127.0.0.1:9");
        assert_eq!(c["auth"]["tokenEndpoint"], "http://127.0.0.1:9/local-auth/oauth2/token");
        assert_eq!(c["auth"]["clientId"], LOCAL_AUDIENCE);
    }
}
