//! `docs/openapi.yaml` documents exactly the HTTP routes of `template.yaml`, and is a valid
//! OpenAPI 3 document.

use std::collections::BTreeSet;

use serde_norway::Value;
use vitalwire_tests::repo_root;

fn document() -> Value {
    serde_norway::from_str(&std::fs::read_to_string(repo_root().join("docs/openapi.yaml")).unwrap()).unwrap()
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

#[test]
fn the_document_lists_every_route_of_the_template_and_no_other() {
    let doc = document();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                documented.insert((method.to_uppercase(), path.as_str().unwrap().to_owned()));
                assert!(op["operationId"].as_str().is_some(), "{method} {path:?} has no operationId");
                let responses = op["responses"].as_mapping().unwrap_or_else(|| panic!("{method} {path:?} has no responses"));
                let public = op.get("security").and_then(Value::as_sequence).is_some_and(|s| s.is_empty());
                assert!(public || responses.contains_key("401"), "{method} {path:?}: every route with a token documents 401");
            }
        }
    }
    let template = vitalwire::platform::stack::Template::load(&repo_root().join("template.yaml")).unwrap();
    let routes: BTreeSet<(String, String)> = template.functions().iter().flat_map(|f| f.http_routes.clone()).collect();
    // The routes without a token say so (`security: []`), and only they do.
    let public: BTreeSet<(String, String)> = template.functions().into_iter().flat_map(|f| f.public_routes).collect();
    let documented_public: BTreeSet<(String, String)> = doc["paths"]
        .as_mapping()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| METHODS.iter().filter_map(move |m| item.get(*m).filter(|op| op.get("security").and_then(Value::as_sequence).is_some_and(|s| s.is_empty())).map(|_| (m.to_uppercase(), path.as_str().unwrap().to_owned()))))
        .collect();
    assert_eq!(public, documented_public, "the routes without a token");
    let missing: Vec<_> = routes.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(missing.is_empty() && extra.is_empty(), "not documented: {missing:?}; documented but not routed: {extra:?}");
    assert!(routes.len() >= 24);

    // The device-key routes say so; the others take a person's JWT.
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        let path = path.as_str().unwrap();
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let key_route = op["security"][0].get("apiKeyAuth").is_some();
            assert_eq!(key_route, path.starts_with("/api/iot/"), "{method} {path}");
        }
    }
}

#[test]
fn the_document_is_valid_openapi_3() {
    let out = std::process::Command::new(vitalwire_local::python())
        .args(["-m", "openapi_spec_validator"])
        .arg(repo_root().join("docs/openapi.yaml"))
        .output()
        .expect("python with openapi-spec-validator (scripts/dev-env.sh installs it)");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
