//! `POST /scores/news2` over real HTTP on the local platform: every NEWS2 conformance vector
//! answered with the engine's output fields, a set without `time` refused with its message,
//! and no token refused.

use reqwest::StatusCode;
use serde_json::{json, Value};
use vitalwire::access::Role;
use vitalwire_tests::LocalGateway;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scoring_route_answers_every_vector_as_the_engine() {
    let gw = LocalGateway::start().await;
    let token = gw.auth().mint("nurse-1", Role::Clinician, None, 10).unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/scores/news2", gw.api_url);
    let dir = vitalwire::platform::reference_dir("conformance/news2");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "json")) {
        let vectors: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(entry.path()).unwrap()).unwrap();
        for v in vectors {
            let response = http.post(&url).bearer_auth(&token).json(&v["data"]).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{}", v["id"]);
            let got: Value = response.json().await.unwrap();
            for (field, expected) in v["expected"].as_object().unwrap() {
                if field != "ranking" && !field.starts_with("obx_") {
                    assert_eq!(&got[field], expected, "{}: {field}", v["id"]);
                }
            }
            assert!(got.get("ranking").is_none(), "the engine's ranking is not served");
            checked += 1;
        }
    }
    assert!(checked >= 70);

    let response = http.post(&url).bearer_auth(&token).json(&json!({"heart_rate": 80, "config": {}})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "time", "{body}");
    let response = http.post(&url).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
