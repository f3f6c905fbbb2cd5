//! IoMT connectors' control plane over real HTTP, through the local HTTP API (template routes,
//! the authorizer) with the connectors kept in DynamoDB (the moto emulator). The seed's control-
//! plane scenarios for connectors: create, several connectors, update, delete.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use vitalwire::access::Role;
use vitalwire::platform::tables::CONNECTORS;
use vitalwire_tests::{Api, LocalGateway};

/// A request with extra headers: the status, the `ETag` header and the JSON body.
async fn send(api: &Api<'_>, method: Method, path: &str, token: &str, headers: &[(&str, &str)], body: Option<Value>) -> (StatusCode, Option<String>, Value) {
    let mut request = api.http.request(method, format!("{}{path}", api.gw.api_url)).header("authorization", format!("Bearer {token}"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().await.expect("HTTP");
    let status = response.status();
    let etag = response.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, etag, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_are_created_listed_updated_and_deleted_with_etags() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let admin = api.token(Role::Admin, None);

    let (status, etag, created) = send(&api, Method::PUT, "/connectors/ward-7", &admin, &[], Some(json!({"identityResolutionType": "Create"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(etag.as_deref(), Some("\"1\""));
    assert_eq!((created["provisioningState"].as_str(), created["destination"].as_str(), created["enabled"].as_bool()), (Some("Succeeded"), Some("vitalwire"), Some(true)));
    let (status, _, _) = send(&api, Method::PUT, "/connectors/home-care", &admin, &[("if-none-match", "*")], Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, _, listed) = send(&api, Method::GET, "/connectors", &admin, &[], None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = listed["connectors"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["home-care", "ward-7"]);

    // Update: the GET answer edited and sent back with its etag.
    let (_, etag, mut current) = send(&api, Method::GET, "/connectors/ward-7", &admin, &[], None).await;
    current["enabled"] = json!(false);
    let (status, new_etag, updated) = send(&api, Method::PUT, "/connectors/ward-7", &admin, &[("if-match", etag.as_deref().unwrap())], Some(current)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!((updated["enabled"].as_bool(), updated["identityResolutionType"].as_str(), new_etag.as_deref()), (Some(false), Some("Create"), Some("\"2\"")));
    let (status, _, stale) = send(&api, Method::PUT, "/connectors/ward-7", &admin, &[("if-match", "\"1\"")], Some(json!({"enabled": true}))).await;
    assert_eq!((status, stale["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("CONFLICT")));

    let (status, _, refused) = send(&api, Method::PUT, "/connectors/ward-8", &admin, &[], Some(json!({"destination": "azure-fhir"}))).await;
    assert_eq!((status, refused["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("destination")), "an unknown FHIR destination");
    let (status, _, _) = send(&api, Method::GET, "/connectors/ward-8", &admin, &[], None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was created");
    let clinician = api.token(Role::Clinician, None);
    let (status, _, _) = send(&api, Method::GET, "/connectors", &clinician, &[], None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Delete takes what is under the connector with it.
    let items = gw.stack.table(&CONNECTORS);
    let db = vitalwire::platform::aws::dynamodb(&gw.stack.config);
    for item in ["CONNECTION#c1", "MAPPING#device"] {
        db.put_item()
            .table_name(&items)
            .item("connectorName", aws_sdk_dynamodb::types::AttributeValue::S("ward-7".into()))
            .item("item", aws_sdk_dynamodb::types::AttributeValue::S(item.into()))
            .send()
            .await
            .unwrap();
    }
    let (status, _, _) = send(&api, Method::DELETE, "/connectors/ward-7", &admin, &[("if-match", "\"1\"")], None).await;
    assert_eq!(status, StatusCode::CONFLICT, "a stale etag deletes nothing");
    let (status, _, _) = send(&api, Method::DELETE, "/connectors/ward-7", &admin, &[], None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let left = db.query().table_name(&items).key_condition_expression("connectorName = :c")
        .expression_attribute_values(":c", aws_sdk_dynamodb::types::AttributeValue::S("ward-7".into())).send().await.unwrap();
    assert_eq!(left.count(), 0, "the connector's connections and mappings are gone too");
    let (status, _, _) = send(&api, Method::DELETE, "/connectors/ward-7", &admin, &[], None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, listed) = send(&api, Method::GET, "/connectors", &admin, &[], None).await;
    assert_eq!(listed["connectors"].as_array().unwrap().len(), 1);
}
