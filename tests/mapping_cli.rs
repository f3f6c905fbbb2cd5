//! `vitalwire-mapping`, the real binary, on the conformance templates of the IoMT FHIR
//! connector (`../shared/conformance/iomt-fhir`): every case of `expected.json` through the
//! CLI, Observations through the FHIR validators, and the diagnostics operators rely on.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};
use vitalwire::platform::reference_dir;
use vitalwire_tests::{assert_valid_fhir, function_binary};

fn conformance() -> PathBuf {
    reference_dir("conformance/iomt-fhir")
}

fn cli(args: &[&str]) -> Output {
    std::process::Command::new(function_binary("vitalwire-mapping")).args(args).output().expect("vitalwire-mapping runs")
}

fn stdout_json(out: &Output) -> Value {
    assert!(out.status.success(), "exit {:?}\nstderr: {}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("stdout is JSON: {e}\n{}", String::from_utf8_lossy(&out.stdout)))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vitalwire-mapping-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn write(name: &str, value: &Value) -> PathBuf {
    let path = scratch(name);
    std::fs::write(&path, serde_json::to_string_pretty(value).unwrap()).unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(conformance().join("expected.json")).unwrap()).unwrap()
}

fn properties(m: &Value) -> Vec<(String, String)> {
    m["Properties"].as_array().unwrap().iter().map(|p| (p["Name"].as_str().unwrap().to_owned(), p["Value"].as_str().unwrap().to_owned())).collect()
}

fn pairs(want: &Value) -> Vec<(String, String)> {
    want.as_array().unwrap().iter().map(|p| (p[0].as_str().unwrap().to_owned(), p[1].as_str().unwrap().to_owned())).collect()
}

#[test]
fn every_normalization_case_passes_through_the_cli() {
    let dir = conformance();
    for case in expected()["normalization_cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let template = match case.get("template_inline") {
            Some(inline) => write(&format!("{id}.json"), inline),
            None => dir.join(case["template"].as_str().unwrap()),
        };
        let payload = dir.join(case["payload"].as_str().unwrap());
        let out = cli(&["normalize", "--device-mapping", s(&template), s(&payload)]);
        let got = stdout_json(&out);
        let want = case["expected"].as_array().unwrap();
        assert_eq!(got.as_array().unwrap().len(), want.len(), "{id}");
        for (m, w) in got.as_array().unwrap().iter().zip(want) {
            assert_eq!(m["DeviceId"], w["DeviceId"], "{id}");
            let time = m["OccurrenceTimeUtc"].as_str().unwrap();
            match (w["ts"].as_str(), w["ts_exact"].as_str()) {
                (Some(ts), _) => assert_eq!(&time[..19], ts, "{id}"),
                (_, Some(exact)) => assert_eq!(time, exact.split(' ').next().unwrap(), "{id}"),
                _ => panic!("{id}: no time expected"),
            }
            assert_eq!(properties(m), pairs(&w["Properties"]), "{id}");
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("measurement(s) from template 0"), "{id}: which template matched: {stderr}");
    }
}

#[test]
fn the_end_to_end_case_gives_valid_observations_with_components_in_template_order() {
    let dir = conformance();
    let case = expected()["end_to_end_cases"].as_array().unwrap().iter().find(|c| c["id"] == "validator_bp_sampleddata").unwrap().clone();
    let mut payload = case["payload_inline"].clone();
    payload["date"] = json!("2024-05-01T10:15:30Z");
    let message = write("bp.json", &payload);
    let device = dir.join(case["device_mapping"].as_str().unwrap());
    let fhir = dir.join(case["fhir_mapping"].as_str().unwrap());

    let valid = cli(&["validate", "--device-mapping", s(&device), "--fhir-mapping", s(&fhir)]);
    assert!(valid.status.success(), "{}", String::from_utf8_lossy(&valid.stderr));

    let measurements = stdout_json(&cli(&["normalize", "--device-mapping", s(&device), "--wrap", s(&message)]));
    let want = &case["expected_measurements"][0];
    let m = &measurements[0];
    for key in ["Type", "DeviceId", "PatientId", "CorrelationId", "EncounterId"] {
        assert_eq!(m[key], want[key], "{key}");
    }
    assert_eq!(properties(m), pairs(&want["Properties"]));

    let bundle = stdout_json(&cli(&["convert", "--device-mapping", s(&device), "--fhir-mapping", s(&fhir), "--wrap", s(&message)]));
    assert_eq!((bundle["resourceType"].as_str(), bundle["type"].as_str()), (Some("Bundle"), Some("collection")));
    let observations: Vec<Value> = bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"].clone()).collect();
    assert_eq!(observations.len(), 1);
    let o = &observations[0];
    let expect = &case["expected_observation"];
    assert_eq!(o["code"]["text"], expect["code.text"]);
    for i in 0..2 {
        let component = &o["component"][i];
        let want = &expect[format!("component[{i}]")];
        assert_eq!(component["code"]["text"], want["code.text"], "component {i}");
        let data = component["valueSampledData"]["data"].as_str().unwrap();
        assert!(data.split(' ').any(|t| t == want["valueSampledData.data contains"].as_str().unwrap()), "component {i}: {data:.80}");
        let extra = component["code"]["coding"].as_array().unwrap().last().unwrap();
        assert_eq!(extra, &json!({"system": "https://azure.microsoft.com/en-us/services/iomt-fhir-connector/", "code": want["code.text"], "display": want["code.text"]}));
    }
    assert_eq!(o["subject"]["reference"].as_str().unwrap().len(), "Patient/".len() + 64, "Create: the patient id derived from patient123");
    assert_valid_fhir(&serde_json::to_string(&observations).unwrap());
}

#[test]
fn messages_split_across_files_or_repeated_give_the_same_observations() {
    let dir = conformance();
    let device = dir.join("devicecontent.json");
    let fhir = dir.join("fhirmapping.json");
    let at = |minute: u32| format!("2024-05-01T10:{minute:02}:00Z");
    let readings: Vec<Value> = (0..3).map(|i| json!({"heartrate": format!("{}", 70 + i), "deviceid": "band-7", "measurementdatetime": at(i)})).collect();
    let all = write("hr-all.json", &Value::Array(readings.clone()));
    let first = write("hr-first.json", &Value::Array(readings[..2].to_vec()));
    let rest = write("hr-rest.json", &Value::Array(readings[1..].to_vec()));
    let convert = |files: &[&Path]| {
        let mut args = vec!["convert", "--device-mapping", s(&device), "--fhir-mapping", s(&fhir), "--patient-id", "pat-7", "--issued", "2024-05-01T11:00:00Z", "--wrap"];
        args.extend(files.iter().map(|p| s(p)));
        stdout_json(&cli(&args))
    };
    let once = convert(&[&all]);
    let split = convert(&[&first, &rest]);
    let observation = |b: &Value| b["entry"][0]["resource"].clone();
    assert_eq!(once["entry"].as_array().unwrap().len(), 1, "one hour, one Observation");
    let (a, b) = (observation(&once), observation(&split));
    assert_eq!(a, b, "files given together are one batch; the reading in both files is one reading");
    let data = a["valueSampledData"]["data"].as_str().unwrap();
    let tokens: Vec<&str> = data.split(' ').collect();
    assert_eq!((tokens.len(), tokens[0], tokens[60], tokens[120], tokens[1]), (3600, "70", "71", "72", "E"), "1000 ms slots over the hour");
    assert_eq!(a["subject"]["reference"], "Patient/pat-7", "Lookup as for a device assigned to the patient");
    assert_eq!(a["status"], "final");
    assert_valid_fhir(&serde_json::to_string(&vec![a, b]).unwrap());
}

#[test]
fn template_errors_come_with_file_line_and_column_and_exit_1() {
    let bad = scratch("bad-device.json");
    std::fs::write(
        &bad,
        "{\r\n  \"templateType\": \"CollectionContent\",\r\n  \"template\": [\r\n    {\"templateType\": \"JsonPathContent\", \"template\": {\"typeName\": \"hr\", \"typeMatchExpression\": \"$..[?(@hr)]\", \"deviceIdExpression\": \"$.d\", \"timestampExpression\": \"$.t\", \"extra\": 1}},\r\n    {\"templateType\": \"JsonPathContent\", \"template\": {\"typeName\": \"steps\"}}\r\n  ]\r\n}\r\n",
    )
    .unwrap();
    let out = cli(&["validate", "--device-mapping", s(&bad)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let name = s(&bad);
    assert!(lines.contains(&format!("{name}:4:169: Could not find member 'extra' on object of type 'JsonPathContentTemplate'.").as_str()), "{stderr}");
    for missing in ["TypeMatchExpression", "DeviceIdExpression", "TimestampExpression"] {
        assert!(lines.contains(&format!("{name}:5:41: Required property '{missing}' not found in JSON.").as_str()), "{missing}: {stderr}");
    }
    assert_eq!(lines.len(), 4, "every error, each once: {stderr}");

    let fhir = write("fhir-missing-value-name.json", &json!({"templateType": "CollectionFhir", "template": [{"templateType": "CodeValueFhir", "template": {"typeName": "hr", "codes": []}}]}));
    let device = conformance().join("devicecontent.json");
    let out = cli(&["validate", "--device-mapping", s(&device), "--fhir-mapping", s(&fhir)]);
    assert!(out.status.success(), "warnings do not fail validation");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning: No matching Fhir Template exists for Device Mapping [steps]. Available Fhir Templates: [hr]."), "{stderr}");
}

#[test]
fn a_message_that_makes_nothing_says_why() {
    let device = conformance().join("devicecontent.json");
    let bare = write("bare.json", &json!({"heartrate": "72", "deviceid": "d", "measurementdatetime": "2024-05-01T10:00:00Z"}));
    let out = cli(&["normalize", "--device-mapping", s(&device), s(&bare)]);
    let measurements = stdout_json(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // `$..[?(@heartrate)]` also tests the root, so bare JSON does match here: Json.NET does so.
    assert_eq!(measurements.as_array().unwrap().len(), 1, "{stderr}");

    let other = write("other.json", &json!({"pulse": 72}));
    let out = cli(&["normalize", "--device-mapping", s(&device), s(&other)]);
    assert_eq!(stdout_json(&out), json!([]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("#1: no measurement: no template's typeMatchExpression matched (template 0 (heartrate) typeMatchExpression $..[?(@heartrate)] matched 0;"), "{stderr}");
    assert!(stderr.contains("The message has no Body"), "{stderr}");

    let refused = write("refused.json", &json!({"Body": {"heartrate": "72", "measurementdatetime": "2024-05-01T10:00:00Z"}}));
    let out = cli(&["normalize", "--device-mapping", s(&device), s(&refused)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("#1: refused: Unable to extract required value for [DeviceIdExpression]"));
}

#[test]
fn every_template_of_the_sample_gives_valid_observations() {
    let dir = conformance();
    let at = "2024-05-01T10:15:00Z";
    let bodies = [
        json!({"heartrate": "78", "deviceid": "band-7", "patientid": "mrn-1", "measurementdatetime": at}),
        json!({"steps": "120", "deviceid": "band-7", "patientid": "mrn-1", "measurementdatetime": at}),
        json!({"systolic": "120", "diastolic": "80", "deviceid": "band-7", "patientid": "mrn-1", "measurementdatetime": at}),
        json!({"hrv": "42.50", "deviceid": "band-7", "patientid": "mrn-1", "measurementdatetime": at}),
        json!({"deviceWorn": "true", "deviceid": "band-7", "patientid": "mrn-1", "measurementdatetime": at}),
        json!({"deviceRemoved": "true", "deviceid": "band-7", "patientid": "mrn-1", "measurementdatetime": at}),
    ];
    let messages = write("sample-all.json", &Value::Array(bodies.to_vec()));
    let out = cli(&["convert", "--device-mapping", s(&dir.join("devicecontent.json")), "--fhir-mapping", s(&dir.join("fhirmapping.json")), "--wrap", s(&messages)]);
    let bundle = stdout_json(&out);
    let observations: Vec<Value> = bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"].clone()).collect();
    assert_eq!(observations.len(), 6, "{}", String::from_utf8_lossy(&out.stderr));
    let kinds: Vec<&str> = observations
        .iter()
        .map(|o| ["valueSampledData", "valueCodeableConcept", "component"].into_iter().find(|k| o.get(*k).is_some()).unwrap_or("none"))
        .collect();
    assert_eq!(kinds, ["valueSampledData", "valueSampledData", "component", "valueSampledData", "valueCodeableConcept", "valueCodeableConcept"]);
    assert!(observations[3]["valueSampledData"]["data"].as_str().unwrap().split(' ').any(|t| t == "42.50"), "the device's digits are kept");
    assert!(observations[3]["valueSampledData"]["origin"].get("unit").is_none(), "the template's empty unit is no unit");
    assert_valid_fhir(&serde_json::to_string(&observations).unwrap());
}
