//! The local stand-in for Cognito's hosted UI: OAuth 2.0's authorization code flow with PKCE
//! (RFC 6749, RFC 7636), so that the clinician console signs in locally with the same code
//! (oidc-client-ts) as against the staff user pool on AWS.
//!
//! - `GET /local-auth/oauth2/authorize`: a sign-in page with no password (a user name and a
//!   staff role), after the request is checked;
//! - `POST /local-auth/oauth2/authorize`: a single-use code, and 303 to the console's
//!   `redirect_uri` with `code` and `state`;
//! - `POST /local-auth/oauth2/token`: the code and its PKCE verifier exchanged for an id token
//!   minted by [`LocalAuth`], which the platform's authorizer accepts as it accepts
//!   `vitalwire-local token` tokens;
//! - `GET /local-auth/logout`: Cognito's logout endpoint (`client_id`, `logout_uri`).
//!
//! Redirect URIs must be under the HTTP API's own origin and `/console/`: the page never sends
//! a browser, nor a code, anywhere else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Map};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::Url;
use vitalwire::access::Role;

use crate::http_api::{LocalAuth, LOCAL_AUDIENCE};

/// Cognito's hosted UI paths, under `/local-auth` as the local JWKS is.
pub const AUTHORIZE_PATH: &str = "/local-auth/oauth2/authorize";
pub const TOKEN_PATH: &str = "/local-auth/oauth2/token";
pub const LOGOUT_PATH: &str = "/local-auth/logout";

/// Where the console lives under the HTTP API's origin: every redirect URI must be below it.
pub const CONSOLE_PATH: &str = "/console/";

/// How long a code may wait for its exchange (Cognito's codes live 5 minutes too).
pub const CODE_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// Lifetime of the id tokens the token endpoint mints, as Cognito's default.
pub const TOKEN_MINUTES: i64 = 60;

/// The longest `state`, `nonce` or `scope` kept: the client's opaque values, bounded so that a
/// page cannot fill the code map with megabytes.
const MAX_OPAQUE_LEN: usize = 1024;

/// What a code stands for until it is exchanged.
struct Grant {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    subject: String,
    role: Role,
    nonce: Option<String>,
    created: Instant,
}

/// The hosted UI's state: the signing key, the HTTP API's origin, and the codes not yet
/// exchanged (in memory: a restarted platform forgets them, as a sign-in in progress may).
pub struct HostedUi {
    auth: LocalAuth,
    /// The HTTP API's URL, whose origin redirect URIs must have.
    api: Url,
    codes: Mutex<HashMap<String, Grant>>,
}

/// The request parameters of the authorization endpoint, checked.
struct AuthorizeRequest {
    params: Vec<(String, String)>,
    redirect_uri: String,
    code_challenge: String,
    state: Option<String>,
    nonce: Option<String>,
}

impl HostedUi {
    /// The hosted UI for the HTTP API at `api_url` (`http://127.0.0.1:8080`), signing with `auth`.
    pub fn new(auth: LocalAuth, api_url: &str) -> Result<Arc<Self>, String> {
        let api = Url::parse(api_url).map_err(|e| format!("the HTTP API's URL {api_url}: {e}"))?;
        Ok(Arc::new(Self { auth, api, codes: Mutex::new(HashMap::new()) }))
    }

    /// The routes: authorize (page and form), token, logout.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route(AUTHORIZE_PATH, get(authorize_page).post(authorize_form))
            .route(TOKEN_PATH, axum::routing::post(token))
            .route(LOGOUT_PATH, get(logout))
            .with_state(self)
    }

    /// Whether `uri` is under the console on the HTTP API's own origin (scheme, host and port
    /// compared as the URL parser normalizes them, so `/console/../x` is not under it); no
    /// fragment, no user info, as RFC 6749 §3.1.2 wants of a redirect URI.
    fn console_uri(&self, uri: &str) -> Option<Url> {
        let url = Url::parse(uri).ok()?;
        let same_origin = url.origin() == self.api.origin();
        let plain = url.fragment().is_none() && url.username().is_empty() && url.password().is_none();
        (same_origin && plain && url.path().starts_with(CONSOLE_PATH)).then_some(url)
    }

    /// Checks an authorization request, in the order that keeps a bad client or redirect URI
    /// from being used at all; the error names the parameter.
    fn check_authorize(&self, params: Vec<(String, String)>) -> Result<AuthorizeRequest, String> {
        let one = |name: &str| single(&params, name);
        let client_id = one("client_id")?.ok_or("client_id is missing")?;
        if client_id != LOCAL_AUDIENCE {
            return Err(format!("client_id is not this platform's app client ({LOCAL_AUDIENCE})"));
        }
        let redirect_uri = one("redirect_uri")?.ok_or("redirect_uri is missing")?;
        if self.console_uri(&redirect_uri).is_none() {
            return Err(format!("redirect_uri is not under {}{}: open the console there", origin_of(&self.api), CONSOLE_PATH));
        }
        if one("response_type")?.as_deref() != Some("code") {
            return Err("response_type must be code".into());
        }
        if one("code_challenge_method")?.as_deref() != Some("S256") {
            return Err("code_challenge_method must be S256 (PKCE)".into());
        }
        let code_challenge = one("code_challenge")?.ok_or("code_challenge is missing (PKCE)")?;
        if !is_s256_challenge(&code_challenge) {
            return Err("code_challenge must be 43 base64url characters (the SHA-256 of the code verifier)".into());
        }
        if let Some(mode) = one("response_mode")? {
            if mode != "query" {
                return Err("response_mode must be query".into());
            }
        }
        for name in ["state", "nonce", "scope"] {
            if one(name)?.is_some_and(|v| v.len() > MAX_OPAQUE_LEN) {
                return Err(format!("{name} is longer than {MAX_OPAQUE_LEN} characters"));
            }
        }
        let (state, nonce) = (one("state")?, one("nonce")?);
        Ok(AuthorizeRequest { params, redirect_uri, code_challenge, state, nonce })
    }

    /// Keeps a new single-use code for `grant`, dropping the expired ones first so that
    /// abandoned sign-ins do not pile up.
    fn issue(&self, grant: Grant) -> Result<String, String> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|e| e.to_string())?;
        let code = base64url(&random);
        let mut codes = self.codes.lock().map_err(|_| "the code map is poisoned")?;
        codes.retain(|_, g| g.created.elapsed() < CODE_LIFETIME);
        codes.insert(code.clone(), grant);
        Ok(code)
    }

    /// Takes a code out of the map: whatever the exchange's outcome, it cannot be used again.
    fn take(&self, code: &str) -> Option<Grant> {
        self.codes.lock().ok()?.remove(code)
    }
}

/// `scheme://host:port` of a URL, for messages.
fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn base64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A PKCE S256 challenge: base64url without padding of 32 bytes.
fn is_s256_challenge(text: &str) -> bool {
    text.len() == 43 && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A PKCE code verifier (RFC 7636 §4.1): 43 to 128 unreserved characters.
fn is_code_verifier(text: &str) -> bool {
    (43..=128).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// A user name the local pool takes: what Cognito user names and the platform's clinician ids
/// look like, and nothing that needs escaping anywhere.
fn is_username(text: &str) -> bool {
    (1..=128).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

/// The one value of `name`, if given; a parameter given twice is refused (RFC 6749 §3.1).
fn single(params: &[(String, String)], name: &str) -> Result<Option<String>, String> {
    let mut values = params.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(v), None) if v.is_empty() => Ok(None),
        (Some(v), None) => Ok(Some(v.clone())),
        (Some(_), Some(_)) => Err(format!("{name} is given more than once")),
    }
}

fn parse_form(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a}\
h1{font-size:1.4rem}label{display:block;margin-top:1rem;font-weight:600}\
input,select,button{font:inherit;padding:.4rem;margin-top:.25rem;width:100%;box-sizing:border-box}\
button{margin-top:1.5rem;background:#0b5cad;color:#fff;border:0;border-radius:4px;cursor:pointer}\
button:focus,input:focus,select:focus{outline:3px solid #f2a900}.error{color:#a00}";

/// An HTML page with the platform's plain style. Pages only post forms to themselves and load
/// nothing: the policy says so, and keeps them out of frames.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>\n",
        title = escape(title)
    );
    let mut response = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    response
}

/// The 400 page of a refused request: it names what is wrong and never redirects, since the
/// redirect URI may be what is wrong.
fn refusal(message: &str) -> Response {
    let body = format!("<h1>Sign-in request refused</h1><p class=\"error\" role=\"alert\">{}</p>", escape(message));
    page(StatusCode::BAD_REQUEST, "Vitalwire local sign-in: request refused", &body)
}

/// The sign-in form, carrying the authorization request's parameters in hidden inputs.
fn sign_in_form(request: &AuthorizeRequest, error: Option<&str>) -> Response {
    let hidden: String = request
        .params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "username" | "role"))
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(k), escape(v)))
        .collect();
    let alert = error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    let body = format!(
        "<h1>Vitalwire local sign-in</h1>\
         <p>This page stands in for the Cognito hosted UI on the local platform. It has no passwords: \
         choose a user name and a role, and the console signs in as that person.</p>{alert}\
         <form method=\"post\" action=\"{AUTHORIZE_PATH}\">{hidden}\
         <label for=\"username\">User name</label>\
         <input id=\"username\" name=\"username\" required autocomplete=\"username\" maxlength=\"128\" pattern=\"[A-Za-z0-9._@\\-]+\" aria-describedby=\"username-hint\">\
         <small id=\"username-hint\">Letters, digits and . _ @ -, e.g. a clinician id registered by an admin.</small>\
         <label for=\"role\">Role</label>\
         <select id=\"role\" name=\"role\"><option value=\"clinician\" selected>clinician</option><option value=\"admin\">admin</option></select>\
         <button type=\"submit\">Sign in</button></form>"
    );
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    page(status, "Vitalwire local sign-in", &body)
}

async fn authorize_page(State(ui): State<Arc<HostedUi>>, RawQuery(query): RawQuery) -> Response {
    let params = parse_form(query.unwrap_or_default().as_bytes());
    match ui.check_authorize(params) {
        Ok(request) => sign_in_form(&request, None),
        Err(message) => refusal(&message),
    }
}

async fn authorize_form(State(ui): State<Arc<HostedUi>>, body: Bytes) -> Response {
    let params = parse_form(&body);
    let (username, role) = match (single(&params, "username"), single(&params, "role")) {
        (Ok(u), Ok(r)) => (u, r),
        (Err(e), _) | (_, Err(e)) => return refusal(&e),
    };
    let request = match ui.check_authorize(params) {
        Ok(r) => r,
        Err(message) => return refusal(&message),
    };
    let Some(subject) = username.filter(|u| is_username(u)) else {
        return sign_in_form(&request, Some("User name: 1 to 128 letters, digits or . _ @ -"));
    };
    let Some(role) = role.as_deref().and_then(Role::parse).filter(|r| matches!(r, Role::Clinician | Role::Admin)) else {
        return sign_in_form(&request, Some("Role: clinician or admin"));
    };
    let Some(mut target) = ui.console_uri(&request.redirect_uri) else {
        return refusal("redirect_uri is not under the console");
    };
    let grant = Grant {
        client_id: LOCAL_AUDIENCE.to_owned(),
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        subject: subject.clone(),
        role,
        nonce: request.nonce.clone(),
        created: Instant::now(),
    };
    let code = match ui.issue(grant) {
        Ok(c) => c,
        Err(e) => return page(StatusCode::INTERNAL_SERVER_ERROR, "Vitalwire local sign-in", &format!("<p>{}</p>", escape(&e))),
    };
    {
        let mut query = target.query_pairs_mut();
        query.append_pair("code", &code);
        if let Some(state) = &request.state {
            query.append_pair("state", state);
        }
    }
    tracing::info!(subject = %subject, role = role.as_str(), "local sign-in: code issued");
    match HeaderValue::from_str(target.as_str()) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location), (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))]).into_response(),
        Err(_) => refusal("redirect_uri cannot be sent back"),
    }
}

/// An OAuth 2.0 error answer of the token endpoint (RFC 6749 §5.2).
fn token_error(error: &str, description: &str) -> Response {
    let body = Json(json!({"error": error, "error_description": description}));
    (StatusCode::BAD_REQUEST, [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")], body).into_response()
}

async fn token(State(ui): State<Arc<HostedUi>>, body: Bytes) -> Response {
    let params = parse_form(&body);
    let field = |name: &str| single(&params, name);
    let fields = (|| Ok::<_, String>((field("grant_type")?, field("client_id")?, field("code")?, field("redirect_uri")?, field("code_verifier")?)))();
    let (grant_type, client_id, code, redirect_uri, verifier) = match fields {
        Ok(f) => f,
        Err(e) => return token_error("invalid_request", &e),
    };
    match grant_type.as_deref() {
        None => return token_error("invalid_request", "grant_type is missing"),
        Some("authorization_code") => {}
        Some(_) => return token_error("unsupported_grant_type", "only authorization_code is supported"),
    }
    // A public client (no secret), as the console's app client is: it names itself.
    if client_id.as_deref() != Some(LOCAL_AUDIENCE) {
        return token_error("invalid_client", "client_id is missing or not this platform's app client");
    }
    let (Some(code), Some(redirect_uri)) = (code, redirect_uri) else {
        return token_error("invalid_request", "code and redirect_uri are required");
    };
    let Some(verifier) = verifier.filter(|v| is_code_verifier(v)) else {
        return token_error("invalid_request", "code_verifier must be 43 to 128 unreserved characters (PKCE)");
    };
    let Some(grant) = ui.take(&code) else {
        return token_error("invalid_grant", "the code is unknown or was already used");
    };
    if grant.created.elapsed() >= CODE_LIFETIME {
        return token_error("invalid_grant", "the code has expired");
    }
    if grant.client_id != LOCAL_AUDIENCE || grant.redirect_uri != redirect_uri {
        return token_error("invalid_grant", "redirect_uri or client_id differ from the authorization request's");
    }
    let computed = base64url(&Sha256::digest(verifier.as_bytes()));
    if !bool::from(computed.as_bytes().ct_eq(grant.code_challenge.as_bytes())) {
        return token_error("invalid_grant", "code_verifier does not match the code_challenge");
    }
    let mut extra = Map::new();
    extra.insert("cognito:username".into(), json!(grant.subject));
    if let Some(nonce) = &grant.nonce {
        extra.insert("nonce".into(), json!(nonce));
    }
    let token = match ui.auth.mint_with(&grant.subject, grant.role, None, TOKEN_MINUTES, extra) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "local sign-in: cannot mint a token");
            return (StatusCode::INTERNAL_SERVER_ERROR, [(header::CACHE_CONTROL, "no-store")], Json(json!({"error": "server_error"}))).into_response();
        }
    };
    tracing::info!(subject = %grant.subject, role = grant.role.as_str(), "local sign-in: code exchanged");
    let body = json!({"id_token": token, "access_token": token, "token_type": "Bearer", "expires_in": TOKEN_MINUTES * 60});
    (StatusCode::OK, [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")], Json(body)).into_response()
}

/// Cognito's logout endpoint: the console's session ends with it, and the browser goes back to
/// `logout_uri` (there are no sessions here to end: the page never remembers anyone).
async fn logout(State(ui): State<Arc<HostedUi>>, RawQuery(query): RawQuery) -> Response {
    let params = parse_form(query.unwrap_or_default().as_bytes());
    let checked = (|| {
        if single(&params, "client_id")?.as_deref() != Some(LOCAL_AUDIENCE) {
            return Err(format!("client_id is not this platform's app client ({LOCAL_AUDIENCE})"));
        }
        let uri = single(&params, "logout_uri")?.ok_or("logout_uri is missing")?;
        ui.console_uri(&uri).ok_or_else(|| format!("logout_uri is not under {}{}", origin_of(&ui.api), CONSOLE_PATH))
    })();
    match checked.map(|url| HeaderValue::from_str(url.as_str())) {
        Ok(Ok(location)) => (StatusCode::FOUND, [(header::LOCATION, location), (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))]).into_response(),
        Ok(Err(_)) => refusal("logout_uri cannot be sent back"),
        Err(message) => refusal(&message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ui() -> Arc<HostedUi> {
        let dir = std::env::temp_dir().join(format!("vitalwire-hosted-ui-{}", std::process::id()));
        HostedUi::new(LocalAuth::load_or_create(&dir).unwrap(), "http://127.0.0.1:8080").unwrap()
    }

    #[test]
    fn redirect_uris_must_be_under_the_console_on_the_apis_origin() {
        let ui = ui();
        assert!(ui.console_uri("http://127.0.0.1:8080/console/").is_some());
        assert!(ui.console_uri("http://127.0.0.1:8080/console/callback?x=1").is_some());
        for refused in [
            "http://127.0.0.1:8081/console/",
            "https://127.0.0.1:8080/console/",
            "http://localhost:8080/console/",
            "http://127.0.0.1:8080/consoles/",
            "http://127.0.0.1:8080/console",
            "http://127.0.0.1:8080/console/../admin/",
            "http://127.0.0.1:8080/console/#fragment",
            "http://me@127.0.0.1:8080/console/",
            "//127.0.0.1:8080/console/",
            "/console/",
        ] {
            assert!(ui.console_uri(refused).is_none(), "{refused}");
        }
    }

    #[test]
    fn parameters_are_checked_and_named() {
        let ui = ui();
        let good = |changes: &[(&str, &str)]| {
            let mut params: Vec<(String, String)> = [
                ("response_type", "code"),
                ("client_id", LOCAL_AUDIENCE),
                ("redirect_uri", "http://127.0.0.1:8080/console/callback"),
                ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
                ("code_challenge_method", "S256"),
                ("state", "s"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
            for (k, v) in changes {
                params.retain(|(name, _)| name != k);
                if !v.is_empty() {
                    params.push(((*k).to_owned(), (*v).to_owned()));
                }
            }
            ui.check_authorize(params).map(|_| ()).map_err(|e| e.split(' ').next().unwrap_or_default().to_owned())
        };
        assert_eq!(good(&[]), Ok(()));
        assert_eq!(good(&[("client_id", "other")]), Err("client_id".into()));
        assert_eq!(good(&[("redirect_uri", "https://evil.example/console/")]), Err("redirect_uri".into()));
        assert_eq!(good(&[("response_type", "token")]), Err("response_type".into()));
        assert_eq!(good(&[("code_challenge_method", "plain")]), Err("code_challenge_method".into()));
        assert_eq!(good(&[("code_challenge", "")]), Err("code_challenge".into()));
        assert_eq!(good(&[("code_challenge", "short")]), Err("code_challenge".into()));
        assert_eq!(good(&[("response_mode", "fragment")]), Err("response_mode".into()));
        let mut twice = vec![("state".to_owned(), "a".to_owned())];
        twice.push(("state".to_owned(), "b".to_owned()));
        assert_eq!(single(&twice, "state"), Err("state is given more than once".into()));
    }

    #[test]
    fn pkce_verifier_matches_the_rfc_7636_example() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(is_code_verifier(verifier));
        assert_eq!(base64url(&Sha256::digest(verifier.as_bytes())), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn echoed_text_is_escaped_and_user_names_are_plain() {
        assert_eq!(escape("\"><script>&'"), "&quot;&gt;&lt;script&gt;&amp;&#39;");
        assert!(is_username("nurse-1@ward.7_a"));
        assert!(!is_username(""));
        assert!(!is_username("a b"));
        assert!(!is_username(&"a".repeat(129)));
    }
}
