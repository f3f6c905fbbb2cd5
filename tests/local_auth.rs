//! The local stand-in for Cognito's hosted UI and the console's files, over real HTTP on the
//! local platform: a sign-in by authorization code and PKCE as oidc-client-ts makes it, the
//! minted id token used on the API, the refusals that keep codes and browsers on the console's
//! origin, and `/console/` serving a build (or saying it is missing).

use base64::Engine;
use reqwest::redirect::Policy;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Digest;
use vitalwire::access::Role;
use vitalwire_tests::LocalGateway;

const CLIENT: &str = "vitalwire-local-app";

fn http() -> reqwest::Client {
    // Redirects are what is tested: never followed.
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

fn encode(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// The query parameters of a URL.
fn query_of(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

fn param(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

async fn post_form(url: String, pairs: &[(&str, &str)]) -> reqwest::Response {
    http().post(url).header("content-type", "application/x-www-form-urlencoded").body(encode(pairs)).send().await.unwrap()
}

/// A sign-in as the console makes it: the authorization parameters, then the form posted as
/// `username` and `role`; the 303's Location.
async fn sign_in(gw: &LocalGateway, redirect_uri: &str, verifier: &str, state: &str, username: &str, role: &str) -> String {
    let challenge = challenge(verifier);
    let params = [
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("redirect_uri", redirect_uri),
        ("state", state),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("scope", "openid profile"),
        ("nonce", "n-0S6_WzA2Mj"),
        ("response_mode", "query"),
    ];
    let page = http().get(format!("{}/local-auth/oauth2/authorize?{}", gw.api_url, encode(&params))).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    for expected in [
        "<title>Vitalwire local sign-in</title>",
        "<label for=\"username\">User name</label>",
        "<select id=\"role\" name=\"role\">",
        "<button type=\"submit\">Sign in</button>",
        // The state is carried to the form, escaped.
        &format!("name=\"state\" value=\"{}\"", state.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")),
    ] {
        assert!(html.contains(expected), "{expected} not in {html}");
    }
    let mut form: Vec<(&str, &str)> = params.to_vec();
    form.extend([("username", username), ("role", role)]);
    let answer = post_form(format!("{}/local-auth/oauth2/authorize", gw.api_url), &form).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{}", answer.text().await.unwrap_or_default());
    answer.headers()["location"].to_str().unwrap().to_owned()
}

async fn exchange(gw: &LocalGateway, code: &str, redirect_uri: &str, verifier: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let form = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect_uri), ("code_verifier", verifier), ("client_id", CLIENT)];
    let answer = post_form(format!("{}/local-auth/oauth2/token", gw.api_url), &form).await;
    let (status, headers) = (answer.status(), answer.headers().clone());
    (status, headers, answer.json().await.unwrap())
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinician_and_an_admin_sign_in_with_code_and_pkce_and_use_the_api() {
    let gw = LocalGateway::start().await;
    let api = vitalwire_tests::Api::new(&gw);
    let admin = gw.auth().mint("ops", Role::Admin, None, 10).unwrap();
    let (status, body) = api.call(Method::PUT, "/admin/clinicians/nurse-7", Some(&admin), Some(json!({"name": "Nurse Seven", "role": "nurse"}))).await;
    assert!(status.is_success(), "{body}");

    // The redirect URI has a query of its own: code and state are added to it.
    let redirect_uri = format!("{}/console/callback?from=login", gw.api_url);
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-and-more-entropy";
    let state = "st&te \"<1>\"";
    let location = sign_in(&gw, &redirect_uri, verifier, state, "nurse-7", "clinician").await;
    assert!(location.starts_with(&format!("{}/console/callback?", gw.api_url)), "{location}");
    let query = query_of(&location);
    assert_eq!(param(&query, "from").as_deref(), Some("login"));
    assert_eq!(param(&query, "state").as_deref(), Some(state));
    let code = param(&query, "code").expect("a code");
    assert!(code.len() >= 43, "{code}");

    // A wrong verifier is refused, and spends the code.
    let wrong = "x".repeat(43);
    let (status, headers, body) = exchange(&gw, &code, &redirect_uri, &wrong).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    let (status, _, body) = exchange(&gw, &code, &redirect_uri, verifier).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "a code is used once, also when refused");

    // A new code with the right verifier gives an id token.
    let location = sign_in(&gw, &redirect_uri, verifier, "s2", "nurse-7", "clinician").await;
    let code = param(&query_of(&location), "code").unwrap();
    let (status, _, body) = exchange(&gw, &code, &format!("{}/console/other", gw.api_url), verifier).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "another redirect_uri: {body}");
    let location = sign_in(&gw, &redirect_uri, verifier, "s3", "nurse-7", "clinician").await;
    let code = param(&query_of(&location), "code").unwrap();
    let (status, headers, body) = exchange(&gw, &code, &redirect_uri, verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!((body["token_type"].as_str(), body["expires_in"].as_i64()), (Some("Bearer"), Some(3600)));
    let id_token = body["id_token"].as_str().unwrap().to_owned();
    assert_eq!(body["access_token"].as_str(), Some(id_token.as_str()));
    let c = claims(&id_token);
    assert_eq!(
        (c["sub"].as_str(), c["cognito:username"].as_str(), c["nonce"].as_str(), c["iss"].as_str(), c["aud"].as_str(), c["token_use"].as_str()),
        (Some("nurse-7"), Some("nurse-7"), Some("n-0S6_WzA2Mj"), Some("vitalwire-local-staff"), Some(CLIENT), Some("id"))
    );
    assert_eq!(c["cognito:groups"], json!(["clinician"]));
    assert!((3590..=3610).contains(&(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap())));

    // The API takes it as the registered clinician; a clinician is no admin.
    let (status, body) = api.call(Method::GET, "/worklist", Some(&id_token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = api.call(Method::GET, "/admin/devices", Some(&id_token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = exchange(&gw, &code, &redirect_uri, verifier).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "the same code again");

    // An admin sign-in reads the admin routes.
    let location = sign_in(&gw, &redirect_uri, verifier, "s4", "ops@example.org", "admin").await;
    let code = param(&query_of(&location), "code").unwrap();
    let (status, _, body) = exchange(&gw, &code, &redirect_uri, verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api.call(Method::GET, "/admin/devices", body["id_token"].as_str(), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The token endpoint's own refusals, as RFC 6749 §5.2 names them.
    let token_url = format!("{}/local-auth/oauth2/token", gw.api_url);
    for (form, error) in [
        (vec![("grant_type", "password"), ("client_id", CLIENT)], "unsupported_grant_type"),
        (vec![("grant_type", "authorization_code"), ("client_id", "other"), ("code", "c"), ("redirect_uri", &redirect_uri), ("code_verifier", verifier)], "invalid_client"),
        (vec![("grant_type", "authorization_code"), ("client_id", CLIENT), ("redirect_uri", &redirect_uri), ("code_verifier", verifier)], "invalid_request"),
        (vec![("grant_type", "authorization_code"), ("client_id", CLIENT), ("code", "c"), ("redirect_uri", &redirect_uri), ("code_verifier", verifier)], "invalid_grant"),
    ] {
        let answer = post_form(token_url.clone(), &form).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"].as_str(), Some(error), "{form:?}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_off_the_console_or_without_pkce_are_refused_without_a_redirect() {
    let gw = LocalGateway::start().await;
    let verifier = "a".repeat(50);
    let challenge = challenge(&verifier);
    let console = format!("{}/console/callback", gw.api_url);
    let good = [
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("redirect_uri", console.as_str()),
        ("state", "s"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let with = |name: &str, value: Option<&str>| -> Vec<(String, String)> {
        let mut params: Vec<(String, String)> = good.iter().filter(|(k, _)| *k != name).map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        if let Some(v) = value {
            params.push((name.to_owned(), v.to_owned()));
        }
        params
    };
    let other_port = "http://127.0.0.1:1/console/callback".to_owned();
    for (params, named) in [
        (with("redirect_uri", Some("https://evil.example/console/callback")), "redirect_uri"),
        (with("redirect_uri", Some(&other_port)), "redirect_uri"),
        (with("redirect_uri", Some(&format!("{}/admin/devices", gw.api_url))), "redirect_uri"),
        (with("client_id", Some("someone-else")), "client_id"),
        (with("code_challenge", None), "code_challenge"),
        (with("code_challenge_method", Some("plain")), "code_challenge_method"),
        (with("response_type", Some("token")), "response_type"),
    ] {
        let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let page = http().get(format!("{}/local-auth/oauth2/authorize?{}", gw.api_url, encode(&pairs))).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::BAD_REQUEST, "{pairs:?}");
        assert!(page.headers().get("location").is_none());
        let html = page.text().await.unwrap();
        assert!(html.contains(named) && !html.contains("<form"), "{named}: {html}");
        // The form's POST refuses the same, so no code is ever sent there.
        let mut form = pairs.clone();
        form.extend([("username", "nurse-7"), ("role", "clinician")]);
        let answer = post_form(format!("{}/local-auth/oauth2/authorize", gw.api_url), &form).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{form:?}");
        assert!(answer.headers().get("location").is_none());
    }

    // A bad user name or a patient role: the form again, no code.
    for (username, role) in [("nurse 7", "clinician"), ("", "clinician"), ("nurse-7", "patient")] {
        let mut form = good.to_vec();
        form.extend([("username", username), ("role", role)]);
        let answer = post_form(format!("{}/local-auth/oauth2/authorize", gw.api_url), &form).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{username} {role}");
        assert!(answer.headers().get("location").is_none());
        assert!(answer.text().await.unwrap().contains("<form"));
    }

    // Logout goes back to the console only.
    let logout = |client: &str, uri: &str| format!("{}/local-auth/logout?{}", gw.api_url, encode(&[("client_id", client), ("logout_uri", uri)]));
    let answer = http().get(logout(CLIENT, &format!("{}/console/", gw.api_url))).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::FOUND);
    assert_eq!(answer.headers()["location"].to_str().unwrap(), format!("{}/console/", gw.api_url));
    for (client, uri) in [(CLIENT, "https://evil.example/console/"), ("someone-else", &format!("{}/console/", gw.api_url) as &str)] {
        let answer = http().get(logout(client, uri)).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{client} {uri}");
        assert!(answer.headers().get("location").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_with_its_config_or_a_hint_when_not_built() {
    let dir = std::env::temp_dir().join(format!("vitalwire-console-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><title>Console</title><script type=\"module\" src=\"./assets/app.js\"></script>").unwrap();
    std::fs::write(dir.join("assets/app.js"), "console.log('vitalwire');\n").unwrap();
    let gw = LocalGateway::start_with_console(&dir).await;
    let get = |path: &str| http().get(format!("{}{path}", gw.api_url)).send();

    let answer = get("/console").await.unwrap();
    assert!(answer.status().is_redirection(), "{}", answer.status());
    assert_eq!(answer.headers()["location"], "/console/");
    let answer = get("/console/").await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(answer.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(answer.text().await.unwrap().contains("<title>Console</title>"));
    let answer = get("/console/assets/app.js").await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(answer.headers()["content-type"].to_str().unwrap().contains("javascript"), "{:?}", answer.headers());
    assert_eq!(answer.text().await.unwrap(), "console.log('vitalwire');\n");
    // The app's own routes load it; a missing file is a 404, not the app; nothing outside.
    let answer = get("/console/patients/P1").await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(answer.text().await.unwrap().contains("<title>Console</title>"));
    assert_eq!(get("/console/assets/missing.js").await.unwrap().status(), StatusCode::NOT_FOUND);
    assert!(!get("/console/..%2f..%2fetc%2fpasswd.txt").await.unwrap().status().is_success());

    let answer = get("/console/config.json").await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let config: Value = answer.json().await.unwrap();
    let api = &gw.api_url;
    assert_eq!(
        config,
        json!({"apiUrl": api, "environment": "local", "auth": {
            "issuer": "vitalwire-local-staff", "clientId": CLIENT,
            "authorizationEndpoint": format!("{api}/local-auth/oauth2/authorize"),
            "tokenEndpoint": format!("{api}/local-auth/oauth2/token"),
            "endSessionEndpoint": format!("{api}/local-auth/logout"),
            "scope": "openid profile"}})
    );

    // Without a build: 503 and how to make one.
    std::fs::remove_dir_all(&dir).unwrap();
    let answer = get("/console/").await.unwrap();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.text().await.unwrap().contains("The console is not built: run scripts/dev-env.sh (it runs npm ci and the Vite build in console/)"));
    assert_eq!(get("/console/config.json").await.unwrap().status(), StatusCode::OK, "the config does not need the build");
}
