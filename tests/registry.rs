//! The registry (`vitalwire::wiring::functions`), `template.yaml` and the function binaries
//! agree, both ways: every function of one is in the others with the same trigger, each
//! builds from the settings the template gives it, and reads every one of them.

use std::collections::BTreeSet;

use vitalwire::platform::stack::Template;
use vitalwire::wiring::functions::{by_name, ALL};
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
    for spec in ALL {
        let definition = functions
            .iter()
            .find(|f| f.binary.as_deref() == Some(spec.name))
            .unwrap_or_else(|| panic!("{} is in the registry but template.yaml has no function with that binary", spec.name));
        assert_eq!(
            template_triggers(&template, &definition.logical_id),
            registry_triggers(&spec.trigger),
            "{} ({}): the template's triggers and the registry's differ",
            spec.name,
            definition.logical_id
        );
    }
    for definition in &functions {
        let binary = definition.binary.as_deref().unwrap_or_default();
        assert!(by_name(binary).is_some(), "{} ({binary}) is in template.yaml but not in the registry", definition.logical_id);
    }
    let names: BTreeSet<_> = ALL.iter().map(|s| s.name).collect();
    assert_eq!(names.len(), ALL.len(), "a function is listed twice in the registry");
}

#[test]
fn a_drifted_route_is_caught() {
    // The check above must be able to fail: move one route in the template.
    let body = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let drifted = Template::parse(&body.replace("Path: /admin/devices/{thingName}/status", "Path: /admin/devices/{thingName}/state")).unwrap();
    let spec = by_name("admin-devices-status").unwrap();
    let logical = drifted.functions().into_iter().find(|f| f.binary.as_deref() == Some(spec.name)).unwrap().logical_id;
    assert_ne!(template_triggers(&drifted, &logical), registry_triggers(&spec.trigger));
}

#[test]
fn every_function_has_its_binary_and_every_binary_is_a_function() {
    let bins: BTreeSet<String> = std::fs::read_dir(repo_root().join("functions/src/bin"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
        .collect();
    let names: BTreeSet<String> = ALL.iter().map(|s| s.name.to_owned()).collect();
    assert_eq!(bins, names, "functions/src/bin and the registry list different functions");
    let cargo = std::fs::read_to_string(repo_root().join("functions/Cargo.toml")).unwrap();
    for spec in ALL {
        assert!(cargo.contains(&format!("name = \"{}\"", spec.name)), "functions/Cargo.toml has no [[bin]] {}", spec.name);
        let source = std::fs::read_to_string(repo_root().join(format!("functions/src/bin/{}.rs", spec.name))).unwrap();
        let entry = spec.name.to_uppercase().replace('-', "_");
        assert!(source.contains(&format!("lambda_function!({entry})")), "{}.rs does not run the registry entry {entry}", spec.name);
    }
}

#[tokio::test]
async fn every_function_builds_from_its_template_settings_and_reads_them_all() {
    let t = TestStack::new().await;
    let aws = vitalwire::platform::aws::AwsClients::new(t.config.clone(), None);
    let mut problems = Vec::new();
    for spec in ALL {
        let definition = t.stack.function(spec.name).expect("in the template");
        // The authorizer's issuers name the Cognito user pools, which only AWS has.
        let overrides = vitalwire_local::http_api::LocalAuth::authorizer_settings("http://127.0.0.1:1").into_iter().collect();
        let settings = t.stack.function_env_with(&definition, &overrides).unwrap_or_else(|e| panic!("{e}"));
        let given: BTreeSet<String> = settings.iter().map(|(k, _)| k.clone()).collect();
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
