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
        let secret = key.rsplit('_').next().unwrap();
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

    let sqs = aws_sdk_sqs::Client::new(&gw.stack.config);
    let url = gw.stack.stack.queues["ConnectorMessagesQueue"].clone();
    let mut bodies: Vec<Value> = Vec::new();
    for _ in 0..5 {
        let out = sqs.receive_message().queue_url(&url).max_number_of_messages(10).wait_time_seconds(1).send().await.unwrap();
        for m in out.messages() {
            bodies.push(serde_json::from_str(m.body().unwrap()).unwrap());
            sqs.delete_message().queue_url(&url).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
        }
        if bodies.len() >= 2 {
            break;
        }
    }
    assert_eq!(bodies.len(), 2, "two messages, the retry dropped: {bodies:?}");
    assert_eq!(bodies[0]["Body"]["heartrate"], "78", "in order");
    assert_eq!(bodies[0]["Properties"]["unit"], "count/min");
    assert_eq!(bodies[0]["SystemProperties"]["x-vitalwire-connection"], "gw-1");
    assert_eq!(bodies[1]["SystemProperties"]["message-id"], "batch-1#1");
    // The conformance sample mapping makes its measurements from the queued envelope.
    let mapping = vitalwire::mapping::content::DeviceMapping::parse(&std::fs::read_to_string(vitalwire::platform::reference_dir("conformance/iomt-fhir").join("devicecontent.json")).unwrap()).unwrap();
    assert_eq!(mapping.normalize(&bodies[0]).unwrap()[0].properties[0].value, "78");
}
