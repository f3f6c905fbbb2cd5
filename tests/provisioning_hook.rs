//! `provisioning-hook` against the AWS emulator: the registry's serial-number index and its
//! atomic certificate binding, and the real function binary.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use vitalwire::dead_letters::{DeadLetterStore, DynamoDeadLetterStore};
use vitalwire::devices::{Device, DeviceRegistry, DeviceStatus, DynamoDeviceRegistry, IotCertificateControl};
use vitalwire::devices::provisioning::{self, HookDeps, HookRequest, HookResponse};
use vitalwire::platform::tables::DEAD_LETTERS;
use tokio::task::JoinSet;
use vitalwire_local::runtime_api::RuntimeApi;
use vitalwire_tests::{deployed_binary, emulator_environment, repo_root, TestStack};

type Deps = HookDeps<DynamoDeviceRegistry, IotCertificateControl, DynamoDeadLetterStore>;

fn deps(t: &TestStack) -> Deps {
    t.deps("provisioning-hook")
}

fn registered(serial: &str, status: DeviceStatus) -> Device {
    let mut d = Device::registered("Acme Medical", serial, "BP-200", "", "2026-11-01T00:00:00.000Z");
    d.status = status;
    d
}

fn request(serial: &str, certificate: &str) -> HookRequest {
    HookRequest {
        claim_certificate_id: "claim".into(),
        certificate_id: certificate.into(),
        certificate_pem: String::new(),
        template_arn: "arn:aws:iot:us-east-1:000000000000:provisioningtemplate/DefaultProvisioningTemplate".into(),
        client_id: format!("claim-{serial}"),
        parameters: BTreeMap::from([
            ("Manufacturer".to_owned(), "Acme Medical".to_owned()),
            ("SerialNumber".to_owned(), serial.to_owned()),
        ]),
    }
}

#[tokio::test]
async fn a_registered_device_gets_its_thing_name_and_its_certificate_is_recorded() {
    let t = TestStack::new().await;
    let d = deps(&t);
    d.devices.put(&registered("0001", DeviceStatus::Registered)).await.unwrap();
    let answer = provisioning::handle(&request("0001", "cert-1"), &d).await.unwrap();
    assert!(answer.allow_provisioning);
    assert_eq!(answer.parameter_overrides.get("ThingName").map(String::as_str), Some("acme-medical-0001"));
    let device = d.devices.get("acme-medical-0001").await.unwrap().unwrap();
    assert_eq!(device.status, DeviceStatus::Active);
    assert_eq!(device.certificate_id.as_deref(), Some("cert-1"));
    // Looked up through the bySerialNumber index, case-insensitively on the manufacturer.
    assert!(d.devices.find_by_serial("ACME MEDICAL", "0001").await.unwrap().is_some());
    assert!(d.devices.find_by_serial("Acme Medical", "0002").await.unwrap().is_none());
}

#[tokio::test]
async fn refusals_name_their_reason_for_the_operator() {
    let t = TestStack::new().await;
    let d = deps(&t);
    d.devices.put(&registered("0002", DeviceStatus::Blocked)).await.unwrap();
    d.devices.put(&registered("0003", DeviceStatus::Registered)).await.unwrap();
    assert!(provisioning::handle(&request("0003", "cert-first"), &d).await.unwrap().allow_provisioning);
    for (serial, cert) in [("9999", "c-unknown"), ("0002", "c-blocked"), ("0003", "c-second")] {
        assert!(!provisioning::handle(&request(serial, cert), &d).await.unwrap().allow_provisioning, "{serial}");
    }
    let page = d.dead_letters.list(provisioning::SOURCE, 10, None).await.unwrap();
    let mut reasons: Vec<_> = page.items.iter().map(|l| l.reason.clone()).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "device 'acme-medical-0002' is BLOCKED",
            "device 'acme-medical-0003' is already provisioned with certificate cert-first",
            "no device with manufacturer 'Acme Medical' and serial number '9999' was registered by an operator",
        ]
    );
    assert_eq!(d.devices.get("acme-medical-0003").await.unwrap().unwrap().certificate_id.as_deref(), Some("cert-first"));
}

/// Runs the hook for every request at once on a multi-threaded runtime.
async fn provision_concurrently(d: &Arc<Deps>, requests: Vec<HookRequest>) -> Vec<(HookRequest, HookResponse)> {
    let mut tasks = JoinSet::new();
    for r in requests {
        let d = Arc::clone(d);
        tasks.spawn(async move {
            let answer = provisioning::handle(&r, &d).await.expect("hook");
            (r, answer)
        });
    }
    tasks.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_of_one_device_let_exactly_one_certificate_win() {
    let t = TestStack::new().await;
    let d = Arc::new(deps(&t));
    d.devices.put(&registered("0100", DeviceStatus::Registered)).await.unwrap();
    let requests = (0..20).map(|i| request("0100", &format!("cert-{i}"))).collect();
    let answers = provision_concurrently(&d, requests).await;
    let winners: Vec<_> = answers.iter().filter(|(_, a)| a.allow_provisioning).collect();
    assert_eq!(winners.len(), 1, "exactly one certificate may own the device");
    let bound = d.devices.get("acme-medical-0100").await.unwrap().unwrap().certificate_id.unwrap();
    assert_eq!(bound, winners[0].0.certificate_id);
    assert_eq!(t.count(&DEAD_LETTERS).await, 19, "each losing claim is kept with its reason");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_devices_provisioned_concurrently_each_get_their_own_certificate() {
    let t = TestStack::new().await;
    let d = Arc::new(deps(&t));
    for i in 0..20 {
        d.devices.put(&registered(&format!("2{i:03}"), DeviceStatus::Registered)).await.unwrap();
    }
    let requests = (0..20).map(|i| request(&format!("2{i:03}"), &format!("cert-2{i:03}"))).collect();
    for (req, answer) in provision_concurrently(&d, requests).await {
        assert!(answer.allow_provisioning, "{}", req.certificate_id);
        let thing = &answer.parameter_overrides["ThingName"];
        let device = d.devices.get(thing).await.unwrap().unwrap();
        assert_eq!(device.certificate_id.as_deref(), Some(req.certificate_id.as_str()));
    }
}

#[tokio::test]
async fn the_function_binary_answers_the_sample_hook_event() {
    let t = TestStack::new().await;
    deps(&t).devices.put(&registered("0001", DeviceStatus::Registered)).await.unwrap();
    let function = t.stack.function("provisioning-hook").expect("provisioning-hook in template.yaml");
    let mut env = t.stack.function_env(&function).expect("environment resolves");
    env.extend(emulator_environment());
    let api = RuntimeApi::start().await.unwrap();
    let _process = api.spawn_function(&deployed_binary("provisioning-hook"), "provisioning-hook", &env).unwrap();
    let event = std::fs::read(repo_root().join("events/provisioning-hook.json")).unwrap();
    let answer: Value = serde_json::from_slice(&api.invoke(event, Duration::from_secs(30)).await.unwrap()).unwrap();
    assert_eq!(answer, serde_json::json!({"allowProvisioning": true, "parameterOverrides": {"ThingName": "acme-medical-0001"}}));
}

#[tokio::test]
async fn the_registry_keeps_a_blocked_device_blocked_whatever_change_races_it() {
    let t = TestStack::new().await;
    let d = deps(&t);
    d.devices.put(&registered("0090", DeviceStatus::Active)).await.unwrap();
    let thing = "acme-medical-0090";
    let at = "2026-12-01T12:00:00.000Z";
    let inactive = d.devices.set_status(thing, DeviceStatus::Inactive, at).await.unwrap().unwrap();
    assert_eq!(inactive.status, DeviceStatus::Inactive);
    d.devices.set_status(thing, DeviceStatus::Blocked, at).await.unwrap();
    // An activation decided before the block landed is refused by the conditional write.
    for status in [DeviceStatus::Active, DeviceStatus::Inactive] {
        let now = d.devices.set_status(thing, status, "2026-12-01T12:00:01.000Z").await.unwrap().unwrap();
        assert_eq!((now.status, now.updated_at.as_str()), (DeviceStatus::Blocked, at), "{status:?}");
    }
    assert!(d.devices.set_status("acme-medical-none", DeviceStatus::Active, at).await.unwrap().is_none());
}
