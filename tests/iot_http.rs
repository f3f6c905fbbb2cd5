//! The gateway's IoT HTTP APIs through the real AWS SDK clients, pointed at it only by the
//! standard per-service endpoint variables, as a deployed function's code would be.

use aws_sdk_iot::types::CertificateStatus;
use aws_sdk_iotdataplane::primitives::Blob;
use vitalwire_local::gateway::pki::{certificate_id, pem_to_der};
use vitalwire_tests::provisioning::provisioned_device;
use vitalwire_tests::{LocalGateway, MqttTestClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_reach_the_gateway_through_the_iot_sdks() {
    let gw = LocalGateway::start().await;
    // One test in this binary: the variables are process-wide.
    std::env::set_var("AWS_ENDPOINT_URL_IOT_DATA_PLANE", &gw.iot_endpoint);
    std::env::set_var("AWS_ENDPOINT_URL_IOT", &gw.iot_endpoint);
    let config = vitalwire::platform::aws::load_config().await;

    let (thing, cert, key) = provisioned_device(&gw, "0040").await;
    let mut device = MqttTestClient::connect(gw.port, &gw.read("ca.pem"), cert.as_bytes(), key.as_bytes(), &thing).await.unwrap();
    assert!(matches!(device.subscribe(&thing).await[0], rumqttc::SubscribeReasonCode::Success(_)));

    // Data plane: a function replies on the topic named like the thing.
    let data = aws_sdk_iotdataplane::Client::new(&config);
    data.publish().topic(&thing).qos(1).payload(Blob::new(br#"{"uploadUrl":"https://example.invalid/x"}"#.to_vec())).send().await.expect("Publish");
    let reply = device.message_on(&thing).await.expect("the device receives the reply");
    assert_eq!(reply["uploadUrl"], "https://example.invalid/x");
    let refused = data.publish().topic("a/+/wildcard").send().await;
    assert!(refused.is_err(), "a wildcard is not a topic name");

    // Control plane: deactivating the certificate drops the connection and bars reconnecting.
    let iot = aws_sdk_iot::Client::new(&config);
    let id = certificate_id(&pem_to_der(&cert).unwrap());
    let described = iot.describe_certificate().certificate_id(&id).send().await.expect("DescribeCertificate");
    assert_eq!(described.certificate_description().and_then(|d| d.status()), Some(&CertificateStatus::Active));
    iot.update_certificate().certificate_id(&id).new_status(CertificateStatus::Inactive).send().await.expect("UpdateCertificate");
    assert!(device.closed().await, "the live connection is closed");
    assert!(MqttTestClient::connect(gw.port, &gw.read("ca.pem"), cert.as_bytes(), key.as_bytes(), &thing).await.is_err());
    let missing = iot.update_certificate().certificate_id("0".repeat(64)).new_status(CertificateStatus::Inactive).send().await;
    assert!(missing.unwrap_err().into_service_error().is_resource_not_found_exception());
}

/// The control plane that device code, the AWS SDK samples and the AWS CLI use against a fleet,
/// through the unchanged `aws-sdk-iot` client: things, types and groups, principals,
/// certificates, jobs targeting a group through a job template, executions, and AWS's error
/// shape for what is not served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_control_plane_answers_the_aws_sdk() {
    use aws_sdk_iot::error::ProvideErrorMetadata;
    use aws_sdk_iot::types::{AttributePayload, JobExecutionStatus};
    let gw = LocalGateway::start().await;
    let config = vitalwire::platform::aws::load_config().await;
    let iot = aws_sdk_iot::Client::from_conf(aws_sdk_iot::config::Builder::from(&config).endpoint_url(&gw.iot_endpoint).build());
    let code = |e: &dyn ProvideErrorMetadata| e.code().map(str::to_owned);

    // Things and their type.
    iot.create_thing_type().thing_type_name("BloodPressureCuff").send().await.expect("CreateThingType");
    let attributes = || AttributePayload::builder().attributes("model", "BP-200").build();
    let made = iot.create_thing().thing_name("cuff-a").thing_type_name("BloodPressureCuff").attribute_payload(attributes()).send().await.expect("CreateThing");
    let again = iot.create_thing().thing_name("cuff-a").thing_type_name("BloodPressureCuff").attribute_payload(attributes()).send().await.expect("the same again");
    assert_eq!(made.thing_id(), again.thing_id());
    let other = iot.create_thing().thing_name("cuff-a").send().await.unwrap_err();
    assert_eq!(code(&other).as_deref(), Some("ResourceAlreadyExistsException"));
    iot.create_thing().thing_name("cuff-b").send().await.expect("CreateThing");
    let described = iot.describe_thing().thing_name("cuff-a").send().await.expect("DescribeThing");
    assert_eq!((described.thing_type_name(), described.version(), described.attributes().and_then(|a| a.get("model")).map(String::as_str)), (Some("BloodPressureCuff"), 1, Some("BP-200")));
    let typed = iot.list_things().thing_type_name("BloodPressureCuff").send().await.expect("ListThings");
    assert_eq!(typed.things().iter().filter_map(|t| t.thing_name()).collect::<Vec<_>>(), ["cuff-a"]);
    let first = iot.list_things().max_results(1).send().await.unwrap();
    let second = iot.list_things().max_results(1).next_token(first.next_token().unwrap()).send().await.unwrap();
    assert_eq!((first.things()[0].thing_name(), second.things()[0].thing_name()), (Some("cuff-a"), Some("cuff-b")), "paged by nextToken");
    let stale = iot.update_thing().thing_name("cuff-a").expected_version(9).send().await.unwrap_err();
    assert_eq!(code(&stale).as_deref(), Some("VersionConflictException"));
    let merged = AttributePayload::builder().attributes("ward", "7").merge(true).build();
    iot.update_thing().thing_name("cuff-a").expected_version(1).attribute_payload(merged).send().await.expect("UpdateThing");
    assert_eq!(iot.describe_thing().thing_name("cuff-a").send().await.unwrap().attributes().map(|a| a.len()), Some(2));

    // A thing fleet provisioning made, its certificate as principal.
    let (thing, cert, _) = provisioned_device(&gw, "0041").await;
    let cert_id = certificate_id(&pem_to_der(&cert).unwrap());
    let principals = iot.list_thing_principals().thing_name(&thing).send().await.expect("ListThingPrincipals");
    assert_eq!(principals.principals().len(), 1);
    assert!(principals.principals()[0].ends_with(&format!("cert/{cert_id}")));
    let things = iot.list_principal_things().principal(&principals.principals()[0]).send().await.expect("ListPrincipalThings");
    assert_eq!(things.things(), std::slice::from_ref(&thing));

    // A job for a group, from a template; executions per thing.
    iot.create_thing_group().thing_group_name("ward-7").send().await.expect("CreateThingGroup");
    for member in ["cuff-a", thing.as_str()] {
        iot.add_thing_to_thing_group().thing_group_name("ward-7").thing_name(member).send().await.expect("AddThingToThingGroup");
    }
    let members = iot.list_things_in_thing_group().thing_group_name("ward-7").send().await.expect("ListThingsInThingGroup");
    assert_eq!(members.things().len(), 2);
    let template = iot.create_job_template().job_template_id("fw-template").description("firmware").document(r#"{"operation":"firmware-update","version":"2.0.0"}"#).send().await.expect("CreateJobTemplate");
    assert_eq!(iot.list_job_templates().send().await.unwrap().job_templates().len(), 1);
    let group_arn = iot.describe_thing_group().thing_group_name("ward-7").send().await.unwrap().thing_group_arn().unwrap().to_owned();
    iot.create_job().job_id("job-g").targets(group_arn).job_template_arn(template.job_template_arn().unwrap()).send().await.expect("CreateJob");
    let job = iot.describe_job().job_id("job-g").send().await.expect("DescribeJob");
    assert_eq!(job.job().and_then(|j| j.job_process_details()).and_then(|d| d.number_of_queued_things()), Some(2));
    let document = iot.get_job_document().job_id("job-g").send().await.expect("GetJobDocument");
    assert!(document.document().unwrap().contains("2.0.0"), "the template's document");
    let for_thing = iot.list_job_executions_for_thing().thing_name(&thing).send().await.expect("ListJobExecutionsForThing");
    assert_eq!(for_thing.execution_summaries()[0].job_id(), Some("job-g"));
    iot.cancel_job_execution().thing_name("cuff-a").job_id("job-g").send().await.expect("CancelJobExecution");
    let execution = iot.describe_job_execution().thing_name("cuff-a").job_id("job-g").send().await.expect("DescribeJobExecution");
    assert_eq!(execution.execution().and_then(|e| e.status()), Some(&JobExecutionStatus::Canceled));
    let refused = iot.delete_job().job_id("job-g").send().await.unwrap_err();
    assert_eq!(code(&refused).as_deref(), Some("InvalidStateTransitionException"), "a queued execution remains");
    iot.delete_job().job_id("job-g").force(true).send().await.expect("DeleteJob with force");
    assert!(iot.list_jobs().send().await.unwrap().jobs().is_empty());

    // Certificates and deleting a thing, in AWS's order.
    let refused = iot.delete_thing().thing_name(&thing).send().await.unwrap_err();
    assert_eq!(code(&refused).as_deref(), Some("InvalidRequestException"), "its certificate is attached");
    let listed = iot.list_certificates().send().await.expect("ListCertificates");
    assert!(listed.certificates().iter().any(|c| c.certificate_id() == Some(cert_id.as_str())));
    let active = iot.delete_certificate().certificate_id(&cert_id).send().await.unwrap_err();
    assert_eq!(code(&active).as_deref(), Some("CertificateStateException"));
    iot.update_certificate().certificate_id(&cert_id).new_status(CertificateStatus::Inactive).send().await.unwrap();
    iot.detach_thing_principal().thing_name(&thing).principal(&principals.principals()[0]).send().await.expect("DetachThingPrincipal");
    let with_policy = iot.delete_certificate().certificate_id(&cert_id).send().await.unwrap_err();
    assert_eq!(code(&with_policy).as_deref(), Some("DeleteConflictException"), "the device policy is still attached");
    let attached = iot.list_attached_policies().target(&principals.principals()[0]).send().await.expect("ListAttachedPolicies");
    for policy in attached.policies() {
        iot.detach_policy().policy_name(policy.policy_name().unwrap()).target(&principals.principals()[0]).send().await.expect("DetachPolicy");
    }
    iot.delete_certificate().certificate_id(&cert_id).send().await.expect("DeleteCertificate");
    iot.delete_thing().thing_name(&thing).send().await.expect("DeleteThing");
    assert_eq!(code(&iot.describe_thing().thing_name(&thing).send().await.unwrap_err()).as_deref(), Some("ResourceNotFoundException"));

    // DescribeEndpoint as device code asks it; what is not served answers AWS's error shape.
    let endpoint = iot.describe_endpoint().endpoint_type("iot:Data-ATS").send().await.expect("DescribeEndpoint");
    assert_eq!(endpoint.endpoint_address(), Some("localhost"));
    let unknown = iot.describe_index().index_name("AWS_Things").send().await.unwrap_err();
    assert_eq!(code(&unknown).as_deref(), Some("UnknownOperationException"));
}

/// AWS IoT's getting-started steps, as the AWS CLI and SDK samples take them: a certificate and
/// keys from the control plane, a policy of one's own attached to it, a thing with it as
/// principal; the gateway judges the connection by that policy, and by the new set once the
/// policy is detached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_and_policy_made_through_the_control_plane_govern_mqtt() {
    use aws_sdk_iot::error::ProvideErrorMetadata;
    let gw = LocalGateway::start().await;
    let config = vitalwire::platform::aws::load_config().await;
    let iot = aws_sdk_iot::Client::from_conf(aws_sdk_iot::config::Builder::from(&config).endpoint_url(&gw.iot_endpoint).build());
    let code = |e: &dyn ProvideErrorMetadata| e.code().map(str::to_owned);

    let made = iot.create_keys_and_certificate().set_as_active(true).send().await.expect("CreateKeysAndCertificate");
    let (arn, id) = (made.certificate_arn().unwrap().to_owned(), made.certificate_id().unwrap().to_owned());
    assert_eq!(id, certificate_id(&pem_to_der(made.certificate_pem().unwrap()).unwrap()), "the id is the certificate's SHA-256, as AWS gives it");
    let keys = made.key_pair().unwrap();
    assert!(keys.public_key().unwrap().contains("PUBLIC KEY") && keys.private_key().unwrap().contains("PRIVATE KEY"));
    let described = iot.describe_certificate().certificate_id(&id).send().await.unwrap();
    assert_eq!(described.certificate_description().and_then(|d| d.status()), Some(&CertificateStatus::Active));

    let malformed = iot.create_policy().policy_name("Broken").policy_document(r#"{"Statement": [{"Action": "iot:*"}]}"#).send().await.unwrap_err();
    assert_eq!(code(&malformed).as_deref(), Some("MalformedPolicyException"));
    let document = r#"{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/sample-*"},
        {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "arn:aws:iot:*:*:topic/test/topic"},
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:*:*:topicfilter/test/topic"}]}"#;
    let policy = iot.create_policy().policy_name("PubSubSample").policy_document(document).send().await.expect("CreatePolicy");
    assert_eq!(policy.policy_document(), Some(document), "kept as written");
    let twice = iot.create_policy().policy_name("PubSubSample").policy_document(document).send().await.unwrap_err();
    assert_eq!(code(&twice).as_deref(), Some("ResourceAlreadyExistsException"));
    assert_eq!(iot.get_policy().policy_name("PubSubSample").send().await.expect("GetPolicy").policy_document(), Some(document));
    assert!(iot.list_policies().send().await.unwrap().policies().iter().any(|p| p.policy_name() == Some("PubSubSample")));

    let (ca, cert, key) = (gw.read("ca.pem"), made.certificate_pem().unwrap().as_bytes(), keys.private_key().unwrap().as_bytes());
    assert!(MqttTestClient::connect(gw.port, &ca, cert, key, "sample-1").await.is_err(), "no policy attached: nothing is allowed");
    iot.attach_policy().policy_name("PubSubSample").target(&arn).send().await.expect("AttachPolicy");
    let attached = iot.list_attached_policies().target(&arn).send().await.expect("ListAttachedPolicies");
    assert_eq!(attached.policies().iter().filter_map(|p| p.policy_name()).collect::<Vec<_>>(), ["PubSubSample"]);
    iot.create_thing().thing_name("sample-thing").send().await.unwrap();
    iot.attach_thing_principal().thing_name("sample-thing").principal(&arn).send().await.expect("AttachThingPrincipal");

    assert!(MqttTestClient::connect(gw.port, &ca, cert, key, "someone-else").await.is_err(), "the policy allows sample-* client ids only");
    let mut client = MqttTestClient::connect(gw.port, &ca, cert, key, "sample-1").await.expect("the policy allows connecting");
    assert!(matches!(client.subscribe("test/topic").await[0], rumqttc::SubscribeReasonCode::Success(_)));
    assert!(matches!(client.subscribe("other/topic").await[0], rumqttc::SubscribeReasonCode::Failure), "not in the policy");
    client.publish("test/topic", r#"{"hello":1}"#).await;
    assert_eq!(client.message_on("test/topic").await, Some(serde_json::json!({"hello": 1})));

    let in_use = iot.delete_policy().policy_name("PubSubSample").send().await.unwrap_err();
    assert_eq!(code(&in_use).as_deref(), Some("DeleteConflictException"));
    iot.detach_policy().policy_name("PubSubSample").target(&arn).send().await.expect("DetachPolicy");
    assert!(MqttTestClient::connect(gw.port, &ca, cert, key, "sample-2").await.is_err(), "a new connection is judged without it");
    iot.delete_policy().policy_name("PubSubSample").send().await.expect("DeletePolicy");
    assert_eq!(code(&iot.get_policy().policy_name("PubSubSample").send().await.unwrap_err()).as_deref(), Some("ResourceNotFoundException"));

    let csr = rcgen::CertificateParams::new(vec![]).unwrap().serialize_request(&rcgen::KeyPair::generate().unwrap()).unwrap().pem().unwrap();
    let from_csr = iot.create_certificate_from_csr().certificate_signing_request(csr).send().await.expect("CreateCertificateFromCsr");
    let status = iot.describe_certificate().certificate_id(from_csr.certificate_id().unwrap()).send().await.unwrap();
    assert_eq!(status.certificate_description().and_then(|d| d.status()), Some(&CertificateStatus::Inactive), "setAsActive was not asked");
}
