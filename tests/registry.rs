//! The registry (`vitalwire::wiring::functions`), `template.yaml` and the function binaries
//! agree, both ways: every function of one is in the other with the same trigger, each builds
//! from the settings the template gives it and reads every one of them, and every function
//! deploys its bundle's binary, which runs the entry its `Handler` names.

use std::collections::{BTreeMap, BTreeSet};

use vitalwire::platform::stack::Template;
use vitalwire::wiring::functions::{all, bundle_of, by_name, BUNDLES, INGEST_BUNDLE};
use vitalwire::wiring::{Settings, Trigger, Wiring};
use vitalwire_tests::{repo_root, TestStack};

fn template() -> Template {
    Template::load(&repo_root().join("template.yaml")).expect("template.yaml parses")
}

/// A function's triggers as the template declares them, in the registry's terms.
fn template_triggers(template: &Template, logical_id: &str) -> Vec<String> {
    let definition = template.functions().into_iter().find(|f| f.logical_id == logical_id).expect("function");
    let mut triggers: Vec<String> = definition
        .http_routes
        .iter()
        .map(|(m, p)| if definition.public_routes.contains(&(m.clone(), p.clone())) { format!("public http {m} {p}") } else { format!("http {m} {p}") })
        .collect();
    triggers.extend(definition.s3_events.iter().map(|(bucket, prefix)| format!("s3 {bucket} {prefix}")));
    triggers.extend(definition.sqs_events.iter().map(|queue| format!("sqs {queue}")));
    triggers.extend(definition.schedules.iter().map(|rate| format!("schedule {rate}")));
    triggers.extend(template.topic_rules().into_iter().filter(|r| r.function() == Some(logical_id)).map(|r| format!("rule {}", r.name)));
    if template.http_authorizer_function().as_deref() == Some(logical_id) {
        triggers.push("authorizer".into());
    }
    if template.provisioning_hook_function().as_deref() == Some(logical_id) {
        triggers.push("provisioning hook".into());
    }
    triggers.sort();
    triggers
}

/// A registry entry's trigger, in the same terms.
fn registry_triggers(trigger: &Trigger) -> Vec<String> {
    let mut triggers = match trigger {
        Trigger::Http(routes) => routes.iter().map(|r| format!("http {} {}", r.method, r.path)).collect(),
        Trigger::PublicHttp(routes) => routes.iter().map(|r| format!("public http {} {}", r.method, r.path)).collect(),
        Trigger::HttpAuthorizer => vec!["authorizer".into()],
        Trigger::IotRule(rule) => vec![format!("rule {rule}")],
        Trigger::ProvisioningHook => vec!["provisioning hook".into()],
        Trigger::S3ObjectCreated { bucket, prefix } => vec![format!("s3 {bucket} {prefix}")],
        Trigger::Sqs { queue } => vec![format!("sqs {queue}")],
        Trigger::Schedule(rate) => vec![format!("schedule {rate}")],
    };
    triggers.sort();
    triggers
}

#[test]
fn every_function_of_the_registry_is_in_the_template_with_its_trigger_and_back() {
    let template = template();
    let functions = template.functions();
    for spec in all() {
        let definition = functions
            .iter()
            .find(|f| f.handler.as_deref() == Some(spec.name))
            .unwrap_or_else(|| panic!("{} is in the registry but template.yaml has no function with that Handler", spec.name));
        assert_eq!(
            template_triggers(&template, &definition.logical_id),
            registry_triggers(&spec.trigger),
            "{} ({}): the template's triggers and the registry's differ",
            spec.name,
            definition.logical_id
        );
    }
    for definition in &functions {
        let handler = definition.handler.as_deref().unwrap_or_default();
        assert!(by_name(handler).is_some(), "{} (Handler {handler:?}) is in template.yaml but not in the registry", definition.logical_id);
    }
    let names: BTreeSet<_> = all().map(|s| s.name).collect();
    assert_eq!(names.len(), all().count(), "a function is listed twice in the registry (in one bundle or in two)");
}

#[test]
fn a_drifted_route_is_caught() {
    // The check above must be able to fail: move one route in the template.
    let body = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let drifted = Template::parse(&body.replace("Path: /admin/devices/{thingName}/status", "Path: /admin/devices/{thingName}/state")).unwrap();
    let spec = by_name("admin-devices-status").unwrap();
    let logical = drifted.functions().into_iter().find(|f| f.handler.as_deref() == Some(spec.name)).unwrap().logical_id;
    assert_ne!(template_triggers(&drifted, &logical), registry_triggers(&spec.trigger));
}

/// What `sam build` compares to decide that two functions are one build (aws-sam-cli's
/// `FunctionBuildDefinition.__eq__`): the same `CodeUri`, `Runtime`, `Architectures`, package
/// type and `Metadata`. `Handler` is not in it for `provided.al2023`.
fn build_definition(resource: &serde_norway::Value, globals: &serde_norway::Value) -> String {
    let property = |name: &str| resource["Properties"].get(name).or_else(|| globals.get(name)).cloned().unwrap_or_default();
    serde_norway::to_string(&(&resource["Metadata"], property("CodeUri"), property("Runtime"), property("Architectures"), property("PackageType"))).unwrap()
}

/// The build definitions of the template's functions: (definition, the logical ids built by it).
fn build_definitions(body: &str) -> BTreeMap<String, Vec<String>> {
    let template: serde_norway::Value = serde_norway::from_str(body).unwrap();
    let globals = &template["Globals"]["Function"];
    let mut definitions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"] == "AWS::Serverless::Function" {
            definitions.entry(build_definition(resource, globals)).or_default().push(id.as_str().unwrap().to_owned());
        }
    }
    definitions
}

#[test]
fn every_function_deploys_its_bundles_binary_so_sam_builds_each_bundle_once() {
    let body = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let definitions = build_definitions(&body);
    assert_eq!(definitions.len(), BUNDLES.len(), "functions that differ in these are built (and linked) again: {:#?}", definitions.keys());
    // The check can fail: one function with a binary of its own is one build more.
    assert_eq!(build_definitions(&body.replacen("Binary: vitalwire-lambda-admin", "Binary: admin-devices-register", 1)).len(), BUNDLES.len() + 1);

    let functions = template().functions();
    for f in &functions {
        let bundle = bundle_of(f.handler.as_deref().unwrap_or_default()).unwrap_or_else(|| panic!("{}: its Handler is in no bundle", f.logical_id));
        assert_eq!(f.binary.as_deref(), Some(bundle.binary), "{}: BuildProperties.Binary must be its bundle's", f.logical_id);
    }
    let handlers: BTreeSet<_> = functions.iter().filter_map(|f| f.handler.clone()).collect();
    assert_eq!(handlers.len(), functions.len(), "every function names its own registry entry in Handler");

    // Each bundle is a binary (that no function is in two bundles is checked above, with `all`).
    let bins: BTreeSet<String> = std::fs::read_dir(repo_root().join("functions/src/bin")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    let expected: BTreeSet<String> = BUNDLES.iter().map(|b| format!("{}.rs", b.binary)).collect();
    assert_eq!(bins, expected, "functions/src/bin holds one binary per bundle");
}

/// A bundle's binary runs the entry its `_HANDLER` names, and refuses to start with a function
/// of another bundle, an unknown one, or none.
#[tokio::test]
async fn a_bundles_binary_runs_only_its_own_functions() {
    let binary = vitalwire_tests::function_binary(INGEST_BUNDLE.binary);
    for (handler, expected) in [
        (Some("messages-get"), "vitalwire-lambda-ingest has no function messages-get"),
        (Some("no-such-function"), "vitalwire-lambda-ingest has no function no-such-function"),
        (None, "_HANDLER is not set"),
    ] {
        let mut command = std::process::Command::new(&binary);
        command.env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9").env_remove("_HANDLER");
        if let Some(handler) = handler {
            command.env("_HANDLER", handler);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{handler:?}: {stderr}");
    }
}

#[tokio::test]
async fn every_function_builds_from_its_template_settings_and_reads_them_all() {
    let t = TestStack::new().await;
    let aws = vitalwire::platform::aws::AwsClients::new(t.config.clone(), None);
    let mut problems = Vec::new();
    for spec in all() {
        let definition = t.stack.function(spec.name).expect("in the template");
        // The authorizer's issuers name the Cognito user pools, which only AWS has.
        let overrides = vitalwire_local::http_api::LocalAuth::authorizer_settings("http://127.0.0.1:1").into_iter().collect();
        let settings = t.stack.function_env_with(&definition, &overrides).unwrap_or_else(|e| panic!("{e}"));
        // `_HANDLER` is Lambda's, from the function's `Handler`: the binary's `main` reads it.
        let given: BTreeSet<String> = settings.iter().map(|(k, _)| k.clone()).filter(|k| k != "_HANDLER").collect();
        assert!(settings.contains(&("_HANDLER".to_owned(), spec.name.to_owned())), "{}: no _HANDLER", spec.name);
        let wiring = Wiring::new(aws.clone(), Settings::from_map(settings));
        if let Err(e) = (spec.build)(&wiring) {
            problems.push(format!("{} does not build from its template settings: {e}", spec.name));
            continue;
        }
        let unread: Vec<_> = given.difference(&wiring.settings.read_names()).cloned().collect();
        if !unread.is_empty() {
            problems.push(format!("{}: template.yaml gives settings the function never reads: {unread:?}", spec.name));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_missing_setting_is_named() {
    let spec = by_name("fhir-ingest").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let aws = runtime.block_on(vitalwire::platform::aws::AwsClients::from_env());
    let wiring = Wiring::new(aws, Settings::from_map([("DEVICES_TABLE".to_owned(), "d".to_owned())]));
    let err = (spec.build)(&wiring).err().expect("fhir-ingest needs more than its devices table");
    assert_eq!(err.to_string(), "setting OBSERVATIONS_TABLE is not set (template.yaml sets it for every function that needs it)");
}
