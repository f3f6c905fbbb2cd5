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
    let (status, headers, body) = api.call_with(method, path, Some(token), headers, body).await;
    (status, headers.get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned), body)
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

    // The seed's scenario 5: an update naming a FHIR service the connector does not belong to.
    let (status, _, refused) = send(&api, Method::PUT, "/connectors/ward-7", &admin, &[], Some(json!({"destination": "other-fhir-service"}))).await;
    assert_eq!((status, refused["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("destination")));
    let (_, unchanged, _) = send(&api, Method::GET, "/connectors/ward-7", &admin, &[], None).await;
    assert_eq!(unchanged.as_deref(), Some("\"2\""), "nothing written");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_get_keys_kept_encrypted_with_kms_that_rotate_one_at_a_time() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let admin = api.token(Role::Admin, None);
    let (status, _, _) = send(&api, Method::PUT, "/connectors/ward-7/connections/gw-1", &admin, &[], Some(json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no connector yet");
    send(&api, Method::PUT, "/connectors/ward-7", &admin, &[], Some(json!({}))).await;
    let (status, etag, created) = send(&api, Method::PUT, "/connectors/ward-7/connections/gw-1", &admin, &[], Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(etag.as_deref(), Some("\"1\""));

    let keys = "/connectors/ward-7/connections/gw-1/listKeys";
    let (status, _, first) = send(&api, Method::POST, keys, &admin, &[], None).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let primary = first["primaryKey"].as_str().unwrap().to_owned();
    let secondary = first["secondaryKey"].as_str().unwrap().to_owned();
    assert!(primary.starts_with("vwc_gw-1_") && secondary.starts_with("vwc_gw-1_") && primary != secondary);
    let endpoint = format!("Endpoint={}/connectors/ward-7/messages;", gw.api_url);
    assert_eq!(first["primaryConnectionString"].as_str().unwrap(), format!("{endpoint}ConnectorName=ward-7;ConnectionName=gw-1;SharedAccessKey={primary}"), "the endpoint the client called");
    let (_, _, again) = send(&api, Method::POST, keys, &admin, &[], None).await;
    assert_eq!(again, first, "the same keys, decrypted again");

    // Nothing in the table holds a key in clear.
    let table = gw.stack.table(&CONNECTORS);
    let db = vitalwire::platform::aws::dynamodb(&gw.stack.config);
    let items = db.scan().table_name(&table).send().await.unwrap();
    let dump = format!("{:?}", items.items());
    for key in [&primary, &secondary] {
        // The secret is base64url, which has `_` in it too: everything after the connection's name.
        let secret = key.strip_prefix("vwc_gw-1_").unwrap();
        assert!(!dump.contains(secret), "a key's secret is stored in clear");
    }

    let (status, _, rotated) = send(&api, Method::POST, "/connectors/ward-7/connections/gw-1/regenerateKey", &admin, &[], Some(json!({"keyName": "secondary"}))).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(rotated["primaryKey"].as_str(), Some(primary.as_str()), "the primary keeps working");
    assert_ne!(rotated["secondaryKey"].as_str(), Some(secondary.as_str()));
    let (status, _, refused) = send(&api, Method::POST, "/connectors/ward-7/connections/gw-1/regenerateKey", &admin, &[], Some(json!({"keyName": "both"}))).await;
    assert_eq!((status, refused["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("keyName")));

    let (status, _, listed) = send(&api, Method::GET, "/connectors/ward-7/connections", &admin, &[], None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["connections"][0]["name"], "gw-1");
    assert!(!listed.to_string().contains("vwc_"), "no keys in a listing");
    let (status, _, _) = send(&api, Method::GET, "/connectors/ward-7/connections/gw-1", &admin, &[], None).await;
    assert_eq!(status, StatusCode::OK);
    let clinician = api.token(Role::Clinician, None);
    let (status, _, _) = send(&api, Method::POST, keys, &clinician, &[], None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only admins see keys");

    // The seed's scenario 7: a connection added (above), updated and removed; its keys stop at once.
    let (status, etag, _) = send(&api, Method::GET, "/connectors/ward-7/connections/gw-1", &admin, &[], None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, updated_etag, _) = send(&api, Method::PUT, "/connectors/ward-7/connections/gw-1", &admin, &[("if-match", etag.as_deref().unwrap())], Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "an update keeps the keys");
    assert_ne!(updated_etag, etag);
    let (_, _, kept) = send(&api, Method::POST, keys, &admin, &[], None).await;
    assert_eq!(kept["primaryKey"], rotated["primaryKey"]);
    send(&api, Method::PUT, "/connectors/ward-7/connections/gw-2", &admin, &[], Some(json!({}))).await;
    let (_, _, second) = send(&api, Method::POST, "/connectors/ward-7/connections/gw-2/listKeys", &admin, &[], None).await;
    let second_key = second["primaryKey"].as_str().unwrap().to_owned();
    let post_with = |key: String| {
        let request = api.http.post(format!("{}/connectors/ward-7/messages", gw.api_url)).header("authorization", format!("SharedAccessKey {key}")).body("{}");
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(post_with(second_key.clone()).await, StatusCode::ACCEPTED);
    let (status, _, _) = send(&api, Method::DELETE, "/connectors/ward-7/connections/gw-2", &admin, &[], None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(post_with(second_key).await, StatusCode::UNAUTHORIZED, "a removed connection's keys stop at once");
    let (_, _, listed) = send(&api, Method::GET, "/connectors/ward-7/connections", &admin, &[], None).await;
    assert_eq!(listed["connections"].as_array().map(Vec::len), Some(1));

    // Deleting the connector takes the connection and its keys.
    let (status, _, _) = send(&api, Method::DELETE, "/connectors/ward-7", &admin, &[], None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, gone) = send(&api, Method::POST, keys, &admin, &[], None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{gone}");
    assert!(gone["error"]["message"].as_str().unwrap().contains("no connector ward-7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_mappings_are_uploaded_validated_and_versioned() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let admin = api.token(Role::Admin, None);
    send(&api, Method::PUT, "/connectors/ward-7", &admin, &[], Some(json!({}))).await;
    let dir = vitalwire::platform::reference_dir("conformance/iomt-fhir");
    let put_file = |kind: &'static str, file: &'static str| {
        let text = std::fs::read(dir.join(file)).unwrap();
        let url = format!("{}/connectors/ward-7/mappings/{kind}", gw.api_url);
        let request = api.http.put(url).header("authorization", format!("Bearer {admin}")).header("content-type", "application/json").body(text);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    // Files as their authors keep them: with a BOM and CRLF line ends.
    let (status, device) = put_file("device", "data_Documentation_CalculatedFunction_HeartRate_Template.json").await;
    assert_eq!(status, StatusCode::CREATED, "{device}");
    let (status, _) = put_file("device", "devicecontent.json").await;
    assert_eq!(status, StatusCode::OK);
    let (status, fhir) = put_file("fhir", "fhirmapping.json").await;
    assert_eq!((status, fhir["version"].as_u64()), (StatusCode::CREATED, Some(1)));
    let (status, refused) = put_file("fhir", "devicecontent.json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["errors"][0]["line"], 2, "{refused}");

    let latest = api.http.get(format!("{}/connectors/ward-7/mappings/device", gw.api_url)).header("authorization", format!("Bearer {admin}")).send().await.unwrap();
    assert_eq!(latest.headers()["x-mapping-version"], "2");
    let text = latest.text().await.unwrap();
    assert_eq!(text, std::fs::read_to_string(dir.join("devicecontent.json")).unwrap().trim_start_matches('\u{feff}'), "as written");
    let (status, _, listed) = send(&api, Method::GET, "/connectors/ward-7/mappings", &admin, &[], None).await;
    assert_eq!(status, StatusCode::OK);
    let versions: Vec<(String, u64)> = listed["mappings"].as_array().unwrap().iter().map(|m| (m["kind"].as_str().unwrap().to_owned(), m["version"].as_u64().unwrap())).collect();
    assert_eq!(versions, [("device".to_owned(), 2), ("fhir".to_owned(), 1)]);
    let (status, _, _) = send(&api, Method::GET, "/connectors/ward-7/mappings/device?version=1", &admin, &[], None).await;
    assert_eq!(status, StatusCode::OK, "the previous version is kept");
    // Removing a mapping (the seed's scenario 8: added, updated, removed).
    let (status, _, _) = send(&api, Method::DELETE, "/connectors/ward-7/mappings/device", &admin, &[], None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = send(&api, Method::GET, "/connectors/ward-7/mappings/device?version=1", &admin, &[], None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "with all its versions");
    let (_, _, listed) = send(&api, Method::GET, "/connectors/ward-7/mappings", &admin, &[], None).await;
    assert_eq!(listed["mappings"].as_array().unwrap().len(), 1, "the FHIR mapping stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_debug_route_runs_the_saved_conformance_mappings() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let admin = api.token(Role::Admin, None);
    send(&api, Method::PUT, "/connectors/ward-7", &admin, &[], Some(json!({}))).await;
    let dir = vitalwire::platform::reference_dir("conformance/iomt-fhir");
    for (kind, file) in [("device", "data_CollectionContentTemplateHrAndBloodPressureValid.json"), ("fhir", "data_CollectionFhirTemplateValid.json")] {
        let response = api.http.put(format!("{}/connectors/ward-7/mappings/{kind}", gw.api_url)).header("authorization", format!("Bearer {admin}"))
            .body(std::fs::read(dir.join(file)).unwrap()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let message = json!({"systolic": "60", "diastolic": "80", "device": "abc", "date": "2024-05-01T10:15:30Z", "session": "abcdefg", "patient": "patient123"});
    let (status, _, ran) = send(&api, Method::POST, "/connectors/ward-7/mappings/debug", &admin, &[], Some(json!({"messages": [message], "wrap": true}))).await;
    assert_eq!(status, StatusCode::OK, "{ran}");
    assert_eq!(ran["measurements"][0]["Type"], "bloodpressure");
    let observation = &ran["bundle"]["entry"][0]["resource"];
    assert_eq!((observation["component"][0]["code"]["text"].as_str(), observation["component"][1]["code"]["text"].as_str()), (Some("diastolic"), Some("systolic")));
    vitalwire_tests::assert_valid_fhir(&observation.to_string());
    let (_, _, listed) = send(&api, Method::GET, "/connectors/ward-7/mappings", &admin, &[], None).await;
    assert_eq!(listed["mappings"].as_array().unwrap().len(), 2, "debugging stores nothing new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_with_a_connection_key_are_queued_in_the_connector_envelope() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let admin = api.token(Role::Admin, None);
    send(&api, Method::PUT, "/connectors/ward-7", &admin, &[], Some(json!({}))).await;
    send(&api, Method::PUT, "/connectors/ward-7/connections/gw-1", &admin, &[], Some(json!({}))).await;
    let (_, _, keys) = send(&api, Method::POST, "/connectors/ward-7/connections/gw-1/listKeys", &admin, &[], None).await;
    let key = keys["primaryKey"].as_str().unwrap().to_owned();
    let post = |auth: String, body: &'static str, extra: &'static [(&'static str, &'static str)]| {
        let mut request = api.http.post(format!("{}/connectors/ward-7/messages", gw.api_url)).header("authorization", auth).header("content-type", "application/x-ndjson").body(body);
        for (k, v) in extra {
            request = request.header(*k, *v);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let ndjson = "{\"heartrate\": \"78\", \"deviceid\": \"band-7\", \"measurementdatetime\": \"2024-05-01T10:15:00Z\"}\n{\"heartrate\": \"80\", \"deviceid\": \"band-7\", \"measurementdatetime\": \"2024-05-01T10:15:01Z\"}\n";
    let (status, answer) = post(format!("SharedAccessKey {key}"), ndjson, &[("x-vitalwire-property-unit", "count/min"), ("x-vitalwire-message-id", "batch-1")]).await;
    assert_eq!((status, answer["accepted"].as_u64()), (StatusCode::ACCEPTED, Some(2)), "{answer}");
    assert_eq!(answer["messageIds"], json!(["batch-1", "batch-1#1"]));
    // A retry of the same request is dropped by the queue.
    let (status, _) = post(format!("SharedAccessKey {key}"), ndjson, &[("x-vitalwire-message-id", "batch-1")]).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let (status, refused) = post("SharedAccessKey vwc_gw-1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(), ndjson, &[]).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED")));
    let (status, _) = post(format!("Bearer {admin}"), ndjson, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a person's token is not a connection key");
    let (status, _) = post(format!("SharedAccessKey {key}"), "{\"heartrate\": ", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, _, letters) = send(&api, Method::GET, "/admin/dead-letters?source=connector%2Fward-7", &admin, &[], None).await;
    assert_eq!(letters["deadLetters"][0]["reasonCode"], "NOT_JSON", "{letters}");
    let (status, _, errors) = send(&api, Method::GET, "/connectors/ward-7/errors", &admin, &[], None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((errors["errors"][0]["type"].as_str(), errors["errors"][0]["stage"].as_str()), (Some("NOT_JSON"), Some("receive")));
    assert_eq!(errors["errors"][0]["rawPayload"], "{\"heartrate\": ", "the raw body, for the operator");

    // The consumer takes them from the queue; with no mappings yet, it keeps each with its
    // envelope as the consumer received it.
    let letters = wait_for_errors(&api, &admin, "ward-7", "NO_DEVICE_MAPPING", 2).await;
    assert_eq!(letters.len(), 2, "two messages, the retry dropped by the queue: {letters:?}");
    let mut bodies: Vec<Value> = letters.iter().map(|e| serde_json::from_str(e["rawPayload"].as_str().unwrap()).unwrap()).collect();
    bodies.sort_by_key(|b| b["SystemProperties"]["message-id"].as_str().unwrap().to_owned());
    assert_eq!(bodies[0]["Body"]["heartrate"], "78");
    assert_eq!(bodies[0]["Properties"]["unit"], "count/min");
    assert_eq!(bodies[0]["SystemProperties"]["x-vitalwire-connection"], "gw-1");
    assert_eq!(bodies[1]["SystemProperties"]["message-id"], "batch-1#1");
    assert_eq!((letters[0]["stage"].as_str(), letters[0]["blocks"].as_str()), (Some("normalization"), Some("message")));
    // The conformance sample mapping makes its measurements from the queued envelope.
    let mapping = vitalwire::mapping::content::DeviceMapping::parse(&std::fs::read_to_string(vitalwire::platform::reference_dir("conformance/iomt-fhir").join("devicecontent.json")).unwrap()).unwrap();
    assert_eq!(mapping.normalize(&bodies[0]).unwrap()[0].properties[0].value, "78");
}

/// The connector's errors of one type, once there are at least `count` (the consumer runs
/// behind the queue).
async fn wait_for_errors(api: &Api<'_>, token: &str, connector: &str, error_type: &str, count: usize) -> Vec<Value> {
    let mut found = Vec::new();
    for _ in 0..100 {
        let (_, _, answer) = send(api, Method::GET, &format!("/connectors/{connector}/errors?type={error_type}"), token, &[], None).await;
        found = answer["errors"].as_array().cloned().unwrap_or_default();
        if found.len() >= count {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    found
}

/// Waits until the connectors' queue holds nothing, in flight or waiting.
async fn drained(gw: &LocalGateway) {
    use aws_sdk_sqs::types::QueueAttributeName::{ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible};
    let sqs = aws_sdk_sqs::Client::new(&gw.stack.config);
    let url = gw.stack.stack.queues["ConnectorMessagesQueue"].clone();
    let mut quiet = 0;
    for _ in 0..150 {
        let out = sqs.get_queue_attributes().queue_url(&url).attribute_names(ApproximateNumberOfMessages).attribute_names(ApproximateNumberOfMessagesNotVisible).send().await.unwrap();
        let count = |name| out.attributes().and_then(|a| a.get(&name)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // Twice in a row: a batch taken between two reads is in flight, not gone.
        quiet = if count(ApproximateNumberOfMessages) + count(ApproximateNumberOfMessagesNotVisible) == 0 { quiet + 1 } else { 0 };
        if quiet == 2 {
            // The last batch's delete comes after its filing: both are done.
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("the connectors' queue did not drain");
}

/// A connector with both mappings and a connection; the connection's primary key.
async fn connector_with_mappings(api: &Api<'_>, admin: &str, name: &str, mode: &str, device: &[u8], fhir: &[u8]) -> String {
    let (status, _, body) = send(api, Method::PUT, &format!("/connectors/{name}"), admin, &[], Some(json!({"identityResolutionType": mode}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for (kind, text) in [("device", device), ("fhir", fhir)] {
        let response = api.http.put(format!("{}/connectors/{name}/mappings/{kind}", api.gw.api_url)).header("authorization", format!("Bearer {admin}")).body(text.to_vec()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    send(api, Method::PUT, &format!("/connectors/{name}/connections/gw-1"), admin, &[], Some(json!({}))).await;
    let (_, _, keys) = send(api, Method::POST, &format!("/connectors/{name}/connections/gw-1/listKeys"), admin, &[], None).await;
    keys["primaryKey"].as_str().unwrap().to_owned()
}

async fn post_messages(api: &Api<'_>, connector: &str, key: &str, body: String) -> (StatusCode, Value) {
    let response = api.http.post(format!("{}/connectors/{connector}/messages", api.gw.api_url)).header("authorization", format!("SharedAccessKey {key}")).body(body).send().await.unwrap();
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_templates_turn_https_messages_into_valid_observations_once() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let admin = api.token(Role::Admin, None);
    let dir = vitalwire::platform::reference_dir("conformance/iomt-fhir");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let key = connector_with_mappings(&api, &admin, "home-care", "Create", &read("devicecontent.json"), &read("fhirmapping.json")).await;
    let messages = std::fs::read_to_string(vitalwire_tests::repo_root().join("docs/iomt-fhir/examples/messages.ndjson")).unwrap();
    let (status, answer) = post_messages(&api, "home-care", &key, messages.clone()).await;
    assert_eq!((status, answer["accepted"].as_u64()), (StatusCode::ACCEPTED, Some(4)), "{answer}");
    drained(&gw).await;

    // Create mode: the device and patient made from the messages' identifiers.
    let device = vitalwire::mapping::observation::hash_id("", "band-7");
    let (status, bundle) = api.call(Method::GET, &format!("/devices/{device}/observations"), Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{bundle}");
    let resources: Vec<Value> = bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"].clone()).collect();
    assert_eq!(resources.len(), 2, "heart rate (two messages, one window) and steps: {bundle}");
    let heart = resources.iter().find(|o| o["code"]["coding"][0]["code"] == "8867-4").expect("heart rate");
    assert_eq!(heart["status"], "amended", "the second message merged into the window the first made");
    let data = heart["valueSampledData"]["data"].as_str().unwrap();
    // An hour's window of one-second slots: 10:15:00 and 10:15:01 are slots 900 and 901.
    let slots: Vec<&str> = data.split(' ').collect();
    assert_eq!((slots.len(), slots[900], slots[901]), (3600, "78", "80"));
    assert_eq!(heart["subject"]["reference"], format!("Patient/{}", vitalwire::mapping::observation::hash_id("", "mrn-1")));
    vitalwire_tests::assert_valid_fhir(&Value::Array(resources.clone()).to_string());
    let unmatched = wait_for_errors(&api, &admin, "home-care", "NO_MEASUREMENT", 1).await;
    assert_eq!(unmatched.len(), 1, "the pulse message matches no template and is kept");
    assert!(unmatched[0]["rawPayload"].as_str().unwrap().contains("\"pulse\""));

    // The same file again (new message ids: the sender did not give its own): nothing changes.
    post_messages(&api, "home-care", &key, messages).await;
    drained(&gw).await;
    let (_, again) = api.call(Method::GET, &format!("/devices/{device}/observations"), Some(&admin), None).await;
    let again: Vec<Value> = again["entry"].as_array().unwrap().iter().map(|e| e["resource"].clone()).collect();
    assert_eq!(again, resources, "redelivered readings write nothing");
}

/// An IoT Hub heart-rate template (the device from the system properties) and its Quantity
/// FHIR template.
fn iot_hub_heart_rate() -> (Value, Value) {
    let device = json!({"templateType": "CollectionContent", "template": [{"templateType": "IotJsonPathContent", "template": {
        "typeName": "heartrate", "typeMatchExpression": "$..[?(@Body.hr)]",
        "values": [{"required": true, "valueExpression": "$.Body.hr", "valueName": "hr"}]}}]});
    let fhir = json!({"templateType": "CollectionFhir", "template": [{"templateType": "CodeValueFhir", "template": {
        "typeName": "heartrate", "codes": [{"code": "8867-4", "system": "http://loinc.org", "display": "Heart rate"}],
        "value": {"valueName": "hr", "valueType": "Quantity", "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}}]});
    (device, fhir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iot_thing_publishes_to_its_connector_topic_and_iot_hub_templates_find_it_by_thing_name() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let admin = api.token(Role::Admin, None);
    let (device_mapping, fhir_mapping) = iot_hub_heart_rate();
    connector_with_mappings(&api, &admin, "ward-7", "Lookup", device_mapping.to_string().as_bytes(), fhir_mapping.to_string().as_bytes()).await;
    let (thing, cert, key) = vitalwire_tests::provisioning::provisioned_device(&gw, "0301").await;
    let mut device = vitalwire_tests::MqttTestClient::connect(gw.port, &gw.read("ca.pem"), cert.as_bytes(), key.as_bytes(), &thing).await.unwrap();
    device.publish(&format!("vitalwire/connectors/ward-7/devices/{thing}/messages"), r#"{"hr": "72.50"}"#).await;
    device.publish(&format!("vitalwire/connectors/no-such/devices/{thing}/messages"), r#"{"hr": 73}"#).await;
    let mut entries = Vec::new();
    for _ in 0..100 {
        let (_, bundle) = api.call(Method::GET, &format!("/devices/{thing}/observations"), Some(&admin), None).await;
        entries = bundle["entry"].as_array().cloned().unwrap_or_default();
        if !entries.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(entries.len(), 1);
    let o = &entries[0]["resource"];
    assert_eq!((o["device"]["reference"].as_str(), o["subject"]["reference"].as_str()), (Some(format!("Device/{thing}").as_str()), Some("Patient/patient-123")));
    // A value sent as text keeps every digit (a JSON number is read as the connector reads it:
    // 72.50 becomes 72.5; see the README).
    let text = api.http.get(format!("{}/devices/{thing}/observations", gw.api_url)).header("authorization", format!("Bearer {admin}")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(r#""value":72.50"#), "the device's digits: {text}");
    vitalwire_tests::assert_valid_fhir(&o.to_string());
    let (_, _, letters) = send(&api, Method::GET, "/admin/dead-letters?source=connector%2Fno-such", &admin, &[], None).await;
    assert_eq!(letters["deadLetters"][0]["reasonCode"], "CONNECTOR_NOT_FOUND", "{letters}");

    // The conformance templates over MQTT: the sample messages, as the thing sends them.
    let dir = vitalwire::platform::reference_dir("conformance/iomt-fhir");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    connector_with_mappings(&api, &admin, "home-care", "Lookup", &read("devicecontent.json"), &read("fhirmapping.json")).await;
    let samples = std::fs::read_to_string(vitalwire_tests::repo_root().join("docs/iomt-fhir/examples/messages.ndjson")).unwrap();
    let topic = format!("vitalwire/connectors/home-care/devices/{thing}/messages");
    device.publish(&topic, samples.replace("band-7", &thing)).await;
    // A thing's message naming another device files nothing for it.
    device.publish(&topic, r#"{"heartrate": "90", "deviceid": "band-7", "measurementdatetime": "2024-05-01T10:20:00Z"}"#).await;
    let foreign = wait_for_errors(&api, &admin, "home-care", "FOREIGN_DEVICE", 1).await;
    assert_eq!((foreign.len(), foreign[0]["thingName"].as_str()), (1, Some(thing.as_str())), "{foreign:?}");
    drained(&gw).await;
    let (_, bundle) = api.call(Method::GET, &format!("/devices/{thing}/observations"), Some(&admin), None).await;
    let resources: Vec<Value> = bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"].clone()).collect();
    let codes: std::collections::BTreeSet<&str> = resources.iter().filter_map(|o| o["code"]["coding"][0]["code"].as_str()).collect();
    assert_eq!(resources.len(), 3, "the first heart rate, the sample's heart-rate window and its steps: {bundle}");
    assert!(codes.contains("8867-4") && codes.contains("55423-8"), "{codes:?}");
    vitalwire_tests::assert_valid_fhir(&Value::Array(resources).to_string());

    // A thing publishes for itself only: another thing's connector topic closes the connection.
    device.publish("vitalwire/connectors/ward-7/devices/acme-medical-0302/messages", r#"{"hr": 70}"#).await;
    assert!(device.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_devices_vital_signs_raise_alerts_and_a_poison_message_blocks_nothing() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let admin = api.token(Role::Admin, None);
    let (status, device) = api.call(Method::POST, "/admin/devices", Some(&admin), Some(json!({"manufacturer": "Acme", "serialNumber": "band 7"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{device}");
    let thing = device["thingName"].as_str().unwrap().to_owned();
    let (status, _) = api.call(Method::PUT, &format!("/admin/devices/{thing}/patient"), Some(&admin), Some(json!({"patientId": "pat-1"}))).await;
    assert_eq!(status, StatusCode::OK);
    let (device_mapping, fhir_mapping) = iot_hub_heart_rate();
    let key = connector_with_mappings(&api, &admin, "ward-7", "Lookup", device_mapping.to_string().as_bytes(), fhir_mapping.to_string().as_bytes()).await;
    // An IoT Hub template reads the device from the system properties: a gateway names it
    // with X-Vitalwire-Device-Id, and the time is when the platform received the message.
    for hr in ["72", "seventy", "135"] {
        let response = api.http.post(format!("{}/connectors/ward-7/messages", gw.api_url)).header("authorization", format!("SharedAccessKey {key}"))
            .header("x-vitalwire-device-id", &thing).json(&json!({"hr": hr})).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        // The connector's Observation identifiers have a resolution of one second: readings
        // of one device and type within a second are one Observation (the later value wins,
        // the earlier is kept as a VALUE_REPLACED error).
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    drained(&gw).await;
    let (_, bundle) = api.call(Method::GET, &format!("/devices/{thing}/observations"), Some(&admin), None).await;
    let mut values: Vec<String> = bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"]["valueQuantity"]["value"].to_string()).collect();
    values.sort();
    assert_eq!(values, ["135", "72"], "the two good readings, the poison one between them kept aside: {bundle}");
    assert!(bundle["entry"].as_array().unwrap().iter().all(|e| e["resource"]["subject"]["reference"] == "Patient/pat-1"), "Lookup: the device's assigned patient");
    vitalwire_tests::assert_valid_fhir(&Value::Array(bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"].clone()).collect()).to_string());
    let poison = wait_for_errors(&api, &admin, "ward-7", "CONVERSION_FAILED", 1).await;
    assert_eq!(poison.len(), 1);
    assert!(poison[0]["reason"].as_str().unwrap().contains("seventy"), "{poison:?}");
    assert_eq!((poison[0]["stage"].as_str(), poison[0]["thingName"].as_str()), (Some("fhirConversion"), Some(thing.as_str())));
    // 135/min scores 3 in NEWS2: an alert for the device's patient, as any reading of it raises.
    let (status, alerts) = api.call(Method::GET, "/patients/pat-1/alerts", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{alerts}");
    assert_eq!(alerts["alerts"].as_array().map(Vec::len), Some(1), "{alerts}");
    assert_eq!(alerts["alerts"][0]["kind"], "news2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_create_mode_batches_for_one_new_device_make_one_patient_and_one_device() {
    let t = vitalwire_tests::TestStack::new().await;
    let spec = vitalwire::wiring::functions::by_name("connector-messages").unwrap();
    let aws = vitalwire::platform::aws::AwsClients::new(t.config.clone(), None);
    let settings = t.stack.function_env(&t.stack.function(spec.name).unwrap()).unwrap();
    let wiring = vitalwire::wiring::Wiring::new(aws, vitalwire::wiring::Settings::from_map(settings));
    let consumer = (spec.build)(&wiring).unwrap().event().unwrap().clone();

    // The connector and its mappings, as the control plane writes them.
    use vitalwire::connectors::mappings::{MappingKind, MappingStore, StoredMapping};
    use vitalwire::connectors::ConnectorStore;
    let store: vitalwire::connectors::DynamoConnectorStore = wiring.build().unwrap();
    let connector = vitalwire::connectors::Connector::created("ward-7", vitalwire::connectors::IdentityResolutionType::Create, "2026-12-01T10:00:00.000Z");
    assert!(store.put(&connector, None).await.unwrap());
    let dir = vitalwire::platform::reference_dir("conformance/iomt-fhir");
    for (kind, file) in [(MappingKind::Device, "devicecontent.json"), (MappingKind::Fhir, "fhirmapping.json")] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap().trim_start_matches('\u{feff}').to_owned();
        store.put_mapping(&StoredMapping { connector: "ward-7".into(), kind, version: 1, text, updated_at: String::new() }).await.unwrap();
    }
    // Eight batches at once, each from its own connection, all for one device nobody created.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let body = json!({"Body": {"heartrate": format!("{}", 70 + i), "deviceid": "band-new", "patientid": "mrn-9", "measurementdatetime": format!("2024-05-01T10:{:02}:00Z", i)},
            "Properties": {}, "SystemProperties": {"x-vitalwire-connector": "ward-7", "iothub-enqueuedtime": "2024-05-01T11:00:00Z", "message-id": format!("m-{i}")}});
        let event = json!({"Records": [{"messageId": format!("m-{i}"), "body": body.to_string(), "attributes": {"MessageGroupId": format!("ward-7/gw-{i}")}}]}).to_string();
        let consumer = consumer.clone();
        tasks.push(tokio::spawn(async move { consumer.call(&event).await.map(|a| a.get().to_owned()).map_err(|e| e.to_string()) }));
    }
    let mut retried = 0;
    for task in tasks {
        let answer: Value = serde_json::from_str(&task.await.unwrap().unwrap()).unwrap();
        retried += answer["batchItemFailures"].as_array().unwrap().len();
    }
    let db = vitalwire::platform::aws::dynamodb(&t.config);
    let count = |table: String| {
        let db = db.clone();
        async move { db.scan().table_name(table).send().await.unwrap().count() }
    };
    assert_eq!(count(t.table(&vitalwire::platform::tables::PATIENTS)).await, 1, "one Patient");
    assert_eq!(count(t.table(&vitalwire::platform::tables::DEVICES)).await, 1, "one Device");
    // Each minute is its own hour-window slot of one Observation: merged by writers racing,
    // none lost. A writer that lost a race is retried by SQS; here it is reported.
    let observations = db.scan().table_name(t.table(&vitalwire::platform::tables::OBSERVATIONS)).send().await.unwrap();
    assert_eq!(observations.count(), 1, "one heart-rate window");
    let resource: Value = serde_json::from_str(observations.items()[0]["resource"].as_s().unwrap()).unwrap();
    let data = resource["valueSampledData"]["data"].as_str().unwrap();
    let present = data.split(' ').filter(|v| *v != "E").count();
    assert_eq!(present + retried, 8, "every reading is in the window or was handed back to be retried: {retried} retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_with_encounter_ties_readings_to_the_encounter_an_operator_registered() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let admin = api.token(Role::Admin, None);
    let (_, device) = api.call(Method::POST, "/admin/devices", Some(&admin), Some(json!({"manufacturer": "Acme", "serialNumber": "ward bed 3"}))).await;
    let thing = device["thingName"].as_str().unwrap().to_owned();
    api.call(Method::PUT, &format!("/admin/devices/{thing}/patient"), Some(&admin), Some(json!({"patientId": "pat-3"}))).await;
    let (status, encounter) = api.call(Method::POST, "/admin/patients/pat-3/encounters", Some(&admin), Some(json!({"identifier": "stay-2026-117"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{encounter}");
    let device_mapping = json!({"templateType": "CollectionContent", "template": [{"templateType": "JsonPathContent", "template": {
        "typeName": "heartrate", "typeMatchExpression": "$..[?(@hr)]", "deviceIdExpression": "$.device", "encounterIdExpression": "$.stay",
        "timestampExpression": "$.at", "values": [{"required": true, "valueExpression": "$.hr", "valueName": "hr"}]}}]});
    let (_, fhir_mapping) = iot_hub_heart_rate();
    let key = connector_with_mappings(&api, &admin, "ward-3", "LookupWithEncounter", device_mapping.to_string().as_bytes(), fhir_mapping.to_string().as_bytes()).await;
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let body = format!("{}\n{}\n", json!({"hr": "81", "device": thing, "stay": "stay-2026-117", "at": at}), json!({"hr": "82", "device": thing, "stay": "stay-unknown", "at": at}));
    let (status, _) = post_messages(&api, "ward-3", &key, body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    drained(&gw).await;
    let (_, bundle) = api.call(Method::GET, &format!("/devices/{thing}/observations"), Some(&admin), None).await;
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{bundle}");
    assert_eq!(entries[0]["resource"]["encounter"]["reference"], format!("Encounter/{}", encounter["id"].as_str().unwrap()));
    vitalwire_tests::assert_valid_fhir(&entries[0]["resource"].to_string());
    let refused = wait_for_errors(&api, &admin, "ward-3", "ENCOUNTER_NOT_FOUND", 1).await;
    assert_eq!((refused.len(), refused[0]["stage"].as_str()), (1, Some("identityResolution")));
}
