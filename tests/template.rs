//! `template.yaml` and the code agree: the tables the adapters assume are the tables the
//! template declares (and that the harness creates), and functions get their table names.

use vitalwire::platform::stack::{EnvValue, TableDefinition, Template};
use vitalwire::platform::tables::{self, TableSpec};
use vitalwire_tests::{repo_root, TestStack};

fn template() -> Template {
    Template::load(&repo_root().join("template.yaml")).expect("template.yaml parses")
}

fn key(schema: &[vitalwire::platform::stack::KeyElement], kind: &str) -> Option<String> {
    TableDefinition::key(schema, kind).map(str::to_owned)
}

fn assert_matches(spec: &TableSpec, table: &TableDefinition) {
    let id = spec.logical_id;
    assert_eq!(key(&table.key_schema, "HASH").as_deref(), Some(spec.partition_key), "{id}: partition key");
    assert_eq!(key(&table.key_schema, "RANGE").as_deref(), spec.sort_key, "{id}: sort key");
    let mut declared: Vec<_> = table.indexes.iter().map(|i| i.name.as_str()).collect();
    let mut expected: Vec<_> = spec.indexes.iter().map(|i| i.name).collect();
    declared.sort_unstable();
    expected.sort_unstable();
    assert_eq!(declared, expected, "{id}: global secondary indexes");
    for index in spec.indexes {
        let declared = table.indexes.iter().find(|i| i.name == index.name).expect("index");
        assert_eq!(key(&declared.key_schema, "HASH").as_deref(), Some(index.partition_key), "{id}.{}", index.name);
        assert_eq!(key(&declared.key_schema, "RANGE").as_deref(), index.sort_key, "{id}.{}", index.name);
        assert_eq!(declared.projection, "ALL", "{id}.{}: adapters read whole items from indexes", index.name);
    }
    for attribute in [Some(spec.partition_key), spec.sort_key].into_iter().flatten().chain(
        spec.indexes.iter().flat_map(|i| [Some(i.partition_key), i.sort_key]).flatten(),
    ) {
        assert_eq!(table.attributes.get(attribute).map(String::as_str), Some("S"), "{id}: {attribute} is a string key");
    }
}

#[test]
fn every_table_the_code_uses_is_declared_as_the_code_assumes() {
    let declared = template().tables().expect("tables");
    for spec in tables::ALL {
        let table = declared
            .iter()
            .find(|t| t.logical_id == spec.logical_id)
            .unwrap_or_else(|| panic!("template.yaml has no {}", spec.logical_id));
        assert_matches(spec, table);
    }
    for table in &declared {
        assert!(
            tables::ALL.iter().any(|s| s.logical_id == table.logical_id),
            "{} is declared in template.yaml but no TableSpec in shared/src/tables.rs describes it",
            table.logical_id
        );
    }
}

#[test]
fn a_drifted_template_is_caught() {
    // The check above must be able to fail: rename the observations' device index.
    let body = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let drifted = Template::parse(&body.replace("IndexName: byDevice", "IndexName: byThing2")).unwrap();
    let table = drifted.tables().unwrap().into_iter().find(|t| t.logical_id == "ObservationsTable").unwrap();
    let caught = std::panic::catch_unwind(|| assert_matches(&tables::OBSERVATIONS, &table));
    assert!(caught.is_err(), "a renamed index must fail the drift check");
}

#[test]
fn functions_get_the_table_names_they_read() {
    let template = template();
    let functions = template.functions();
    let ingest = functions.iter().find(|f| f.handler.as_deref() == Some("fhir-ingest")).expect("fhir-ingest function");
    for spec in [tables::DEVICES, tables::OBSERVATIONS, tables::DEAD_LETTERS] {
        assert_eq!(
            ingest.environment.get(spec.env_var),
            Some(&EnvValue::Ref(spec.logical_id.to_owned())),
            "fhir-ingest's {} must be !Ref {}",
            spec.env_var,
            spec.logical_id
        );
    }
    for f in &functions {
        for (name, value) in &f.environment {
            if let EnvValue::Ref(target) = value {
                if let Some(spec) = tables::ALL.iter().find(|s| s.logical_id == target) {
                    assert_eq!(name, spec.env_var, "{}: {target} must arrive as {}", f.logical_id, spec.env_var);
                }
            }
        }
    }
}

#[tokio::test]
async fn tables_created_from_the_template_have_the_declared_keys() {
    let t = TestStack::new().await;
    for spec in tables::ALL {
        let described = t.dynamodb.describe_table().table_name(t.table(spec)).send().await.expect("describe");
        let table = described.table().expect("table");
        let hash = table.key_schema().iter().find(|k| k.key_type().as_str() == "HASH").map(|k| k.attribute_name());
        assert_eq!(hash, Some(spec.partition_key), "{}", spec.logical_id);
        let mut indexes: Vec<_> = table.global_secondary_indexes().iter().filter_map(|i| i.index_name()).collect();
        indexes.sort_unstable();
        let mut expected: Vec<_> = spec.indexes.iter().map(|i| i.name).collect();
        expected.sort_unstable();
        assert_eq!(indexes, expected, "{}", spec.logical_id);
    }
}

fn infra_json(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(repo_root().join("infra/iot").join(name)).unwrap()).unwrap()
}

#[test]
fn iot_policies_in_the_template_are_the_infra_files() {
    let template = template();
    for (logical_id, file) in [("DeviceIotPolicy", "device-policy.json"), ("ClaimIotPolicy", "claim-policy.json")] {
        let props = template.properties_json(logical_id).unwrap_or_else(|| panic!("{logical_id} missing"));
        assert_eq!(props["PolicyDocument"], infra_json(file), "{logical_id} differs from infra/iot/{file}");
    }
}

#[test]
fn the_provisioning_template_body_is_the_infra_file_and_names_the_device_policy() {
    let template = template();
    let props = template.properties_json("DefaultProvisioningTemplate").expect("DefaultProvisioningTemplate");
    assert_eq!(props["TemplateName"], "DefaultProvisioningTemplate");
    assert_eq!(props["PreProvisioningHook"]["PayloadVersion"], "2020-04-01");
    let body: serde_json::Value = serde_json::from_str(props["TemplateBody"].as_str().expect("body is a string")).unwrap();
    assert_eq!(body, infra_json("provisioning-template.json"));
    let device_policy = template.properties_json("DeviceIotPolicy").unwrap();
    assert_eq!(body["Resources"]["policy"]["Properties"]["PolicyName"], device_policy["PolicyName"]);
    assert!(body["Parameters"].get("ThingName").is_some(), "the hook overrides ThingName, so the body must declare it");
}

#[test]
fn devices_reach_only_the_device_rules_and_job_events_come_from_iot_topics() {
    let template = template();
    let rules = template.topic_rules();
    let by_name = |name: &str| rules.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("rule {name} missing"));
    // Basic Ingest rules have no FROM: only the device's publish to $aws/rules/<name> reaches them.
    assert_eq!(by_name("FHIRIngest").topic_filter(), None);
    assert_eq!(by_name("CreateFileUploadLink").topic_filter(), None);
    let events = by_name("VitalwireJobExecutionEvents");
    assert_eq!(events.topic_filter(), Some("$aws/events/jobExecution/+/+"));
    let handler = template.functions().into_iter().find(|f| Some(f.logical_id.as_str()) == events.function()).and_then(|f| f.handler);
    assert_eq!(handler.as_deref(), Some("job-events"));

    // The device policy lets a device publish to the device rules, and to no other rule (any
    // rule is reachable by name through Basic Ingest).
    let policy = infra_json("device-policy.json");
    let mut rule_resources: Vec<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Action"] == "iot:Publish")
        .flat_map(|s| s["Resource"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r.as_str().and_then(|r| r.split_once("topic/$aws/rules/")).map(|(_, rule)| rule.to_owned()))
        .collect();
    rule_resources.sort();
    assert_eq!(rule_resources, ["CreateFileUploadLink", "CreateFileUploadLink/*", "FHIRIngest", "FHIRIngest/*"]);
}

#[test]
fn failed_events_are_kept_and_someone_hears_of_them() {
    let template = template();
    let functions = template.functions();
    // Functions invoked asynchronously (IoT rules, S3 events) keep what they could not process.
    let rule_functions: Vec<String> = template.topic_rules().iter().filter_map(|r| r.function().map(str::to_owned)).collect();
    for f in functions.iter().filter(|f| !f.s3_events.is_empty() || rule_functions.contains(&f.logical_id)) {
        let props = template.properties_json(&f.logical_id).unwrap();
        assert_eq!(props["DeadLetterQueue"]["Type"], "SQS", "{} has no dead-letter queue", f.logical_id);
        assert_eq!(props["DeadLetterQueue"]["TargetArn"]["!GetAtt"], "FailedEventsQueue.Arn", "{}", f.logical_id);
    }
    let alarm = template.properties_json("FailedEventsAlarm").expect("an alarm on the failed events");
    assert_eq!(alarm["MetricName"], "ApproximateNumberOfMessagesVisible");
    assert_eq!(alarm["Dimensions"][0]["Value"]["!GetAtt"], "FailedEventsQueue.QueueName");
    assert_eq!(alarm["AlarmActions"][0]["!Ref"], "OperatorAlarmsTopic");
}

#[test]
fn buckets_refuse_plain_http_and_expire_old_versions() {
    let template = template();
    for bucket in template.buckets() {
        let props = template.properties_json(&bucket).unwrap();
        assert_eq!(props["VersioningConfiguration"]["Status"], "Enabled", "{bucket}");
        let rules = props["LifecycleConfiguration"]["Rules"].as_array().unwrap_or_else(|| panic!("{bucket} has no lifecycle rules"));
        assert!(rules.iter().any(|r| r["NoncurrentVersionExpiration"]["NoncurrentDays"].is_number()), "{bucket} keeps old versions forever");
        let policy = template.properties_json(&format!("{bucket}TlsOnly")).unwrap_or_else(|| panic!("{bucket} has no TLS-only policy"));
        assert_eq!(policy["Bucket"]["!Ref"], bucket.as_str());
        let deny = &policy["PolicyDocument"]["Statement"][0];
        assert_eq!((deny["Effect"].as_str(), deny["Condition"]["Bool"]["aws:SecureTransport"].as_str()), (Some("Deny"), Some("false")));
    }
}

#[test]
fn dead_letters_expire_after_the_configured_retention() {
    let template = template();
    let table = template.properties_json("DeadLettersTable").unwrap();
    assert_eq!(table["TimeToLiveSpecification"], serde_json::json!({"AttributeName": "expiresAt", "Enabled": true}));
    for f in template.functions() {
        if f.environment.contains_key("DEAD_LETTERS_TABLE") {
            assert_eq!(
                f.environment.get("DEAD_LETTER_RETENTION_DAYS"),
                Some(&EnvValue::Ref("DeadLetterRetentionDays".into())),
                "{} keeps dead letters without the retention setting",
                f.logical_id
            );
        }
    }
}

/// The statements of a function's inline policy that allow `action`, as JSON text.
fn statements_allowing(template: &Template, function: &str, action: &str) -> Vec<String> {
    let props = template.properties_json(function).unwrap_or_else(|| panic!("no {function}"));
    let policies = props["Policies"].as_array().cloned().unwrap_or_default();
    policies
        .iter()
        .flat_map(|p| p["Statement"].as_array().cloned().unwrap_or_default())
        .filter(|st| st["Action"] == action || st["Action"].as_array().is_some_and(|a| a.iter().any(|x| x == action)))
        .map(|st| st["Resource"].to_string())
        .collect()
}

#[test]
fn functions_may_query_the_indexes_their_adapters_query() {
    // Each adapter method that queries an index, and the functions whose dependencies call it:
    // IAM grants a table's indexes apart from the table, and the emulator does not enforce IAM.
    let uses = [
        ("AdminDeadLettersFunction", "${DeadLettersTable.Arn}/index/byThing"),
        ("FhirIngestFunction", "${ObservationsTable.Arn}/index/byPatientCode"),
        ("IotVitalsFunction", "${ObservationsTable.Arn}/index/byPatientCode"),
        ("IotVitalsBatchFunction", "${ObservationsTable.Arn}/index/byPatientCode"),
        ("InboxProcessorFunction", "${ObservationsTable.Arn}/index/byPatientCode"),
        ("InboxContinueFunction", "${ObservationsTable.Arn}/index/byPatientCode"),
        ("AdminInboxFilesFunction", "${InboxFilesTable.Arn}/index/byStatus"),
        ("DeviceObservationsFunction", "${ObservationsTable.Arn}/index/byDevice"),
        ("IotStatusFunction", "${ObservationsTable.Arn}/index/byDevice"),
        ("AdminApiKeysListFunction", "${ApiKeysTable.Arn}/index/byThing"),
        ("UploadLinkFunction", "${UploadsTable.Arn}/index/byThing"),
        ("DeviceDocumentsFunction", "${UploadsTable.Arn}/index/byThing"),
        ("ProvisioningHookFunction", "${DevicesTable.Arn}/index/bySerialNumber"),
        ("AdminDevicesRegisterFunction", "${DevicesTable.Arn}/index/bySerialNumber"),
    ];
    let template = template();
    for (function, index) in uses {
        let resources = statements_allowing(&template, function, "dynamodb:Query");
        assert!(resources.iter().any(|r| r.contains(&format!("\"{index}\""))), "{function} may not query {index}: {resources:?}");
    }
}

/// The metric names the README documents (its "Metrics, alarms and the dashboard" table).
fn documented_metrics() -> std::collections::BTreeSet<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = readme.split("## Metrics, alarms and the dashboard").nth(1).expect("the README's metrics section");
    let table = section.split("\n\n").find(|block| block.starts_with("| Metric |")).expect("its table");
    table
        .lines()
        .skip(2)
        .filter_map(|row| row.split('|').nth(1))
        .flat_map(|cell| cell.split(',').map(|name| name.trim().trim_matches('`').to_owned()).collect::<Vec<_>>())
        .collect()
}

#[test]
fn operators_hear_of_refusals_errors_and_throttles_and_see_the_stacks_metrics() {
    let template = template();
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let raw: serde_json::Value = serde_json::to_value(serde_norway::from_str::<serde_norway::Value>(&text).unwrap()).unwrap();
    let namespace = serde_json::json!({"!Sub": "Vitalwire/${AWS::StackName}"});
    assert_eq!(raw["Globals"]["Function"]["Environment"]["Variables"]["METRICS_NAMESPACE"], namespace, "every function writes to its stack's namespace");
    let documented = documented_metrics();
    assert!(documented.contains("Refusals") && documented.contains("ReadingsFiled"), "{documented:?}");

    for alarm in ["RefusalRateAlarm", "FunctionErrorsAlarm", "IngestThrottlesAlarm", "FailedEventsAlarm", "ConnectorMessagesDeadLetterAlarm"] {
        let props = template.properties_json(alarm).unwrap_or_else(|| panic!("{alarm} is declared"));
        assert_eq!(props["AlarmActions"][0]["!Ref"], "OperatorAlarmsTopic", "{alarm}");
        for metric in props["Metrics"].as_array().into_iter().flatten().filter_map(|m| m["MetricStat"]["Metric"].as_object()) {
            if metric["Namespace"] != "AWS/Lambda" {
                assert_eq!(metric["Namespace"], namespace, "{alarm}");
                let name = metric["MetricName"].as_str().unwrap();
                assert!(documented.contains(name), "{alarm} watches {name}, which the README does not document");
                assert!(metric.get("Dimensions").is_none(), "{alarm} watches the stack-wide roll-up, which has no dimensions");
            }
        }
    }
    // CloudWatch can publish only to a topic whose key lets it.
    assert_eq!(template.properties_json("OperatorAlarmsTopic").unwrap()["KmsMasterKeyId"]["!Ref"], "OperatorAlarmsKey");
    let key = template.properties_json("OperatorAlarmsKey").unwrap();
    let statements = key["KeyPolicy"]["Statement"].as_array().unwrap();
    assert!(statements.iter().any(|s| s["Principal"]["Service"] == "cloudwatch.amazonaws.com" && s["Action"].to_string().contains("kms:GenerateDataKey")));

    // The dashboard is JSON once CloudFormation substitutes its placeholders, and shows only
    // metrics the functions write.
    let dashboard = template.properties_json("OperationsDashboard").expect("a dashboard");
    let body = dashboard["DashboardBody"]["!Sub"].as_str().unwrap();
    let mut substituted = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("${") {
        let end = rest[start..].find('}').unwrap() + start;
        let placeholder = &rest[start + 2..end];
        assert!(placeholder.starts_with("AWS::") || template.has_resource(placeholder.split('.').next().unwrap()), "{placeholder} is not in the template");
        substituted.push_str(&rest[..start]);
        substituted.push_str(&format!("sub-{}", placeholder.replace("::", "-")));
        rest = &rest[end + 1..];
    }
    substituted.push_str(rest);
    let body: serde_json::Value = serde_json::from_str(&substituted).expect("the dashboard body is JSON");
    let own = "Vitalwire/sub-AWS-StackName";
    let mut shown = std::collections::BTreeSet::new();
    for widget in body["widgets"].as_array().unwrap() {
        for metric in widget["properties"]["metrics"].as_array().unwrap() {
            let first = &metric[0];
            if first == own {
                shown.insert(metric[1].as_str().unwrap().to_owned());
            } else if let Some(expression) = first["expression"].as_str() {
                assert!(expression.contains(&format!("{{{own},Service,")), "{expression}");
                let name = expression.split("MetricName=\"").nth(1).unwrap().split('"').next().unwrap();
                shown.insert(name.to_owned());
            }
        }
    }
    let undocumented: Vec<_> = shown.difference(&documented).collect();
    assert!(undocumented.is_empty(), "the dashboard shows metrics the README does not document: {undocumented:?}");
    assert!(shown.contains("AlertsRaised") && shown.contains("InboxLag"), "{shown:?}");
}

#[test]
fn the_queued_ingest_path_sends_the_same_rule_to_a_queue_whose_consumer_reports_partial_failures() {
    use vitalwire::platform::stack::RuleTarget;
    let rule = |template: &Template| template.topic_rules().into_iter().find(|r| r.name == "FHIRIngest").expect("FHIRIngest");
    assert_eq!(rule(&template()).target, RuleTarget::Function("FhirIngestFunction".into()), "direct by default");
    let queued = template().with_parameter("IngestPath", "queue");
    assert_eq!(rule(&queued).target, RuleTarget::Queue("IngestQueue".into()));
    assert_eq!(queued.condition("IngestQueued"), Some(true));
    assert_eq!(template().condition("IngestQueued"), Some(false));

    let role = template().properties_json("IngestQueueRole").unwrap();
    let statement = &role["Policies"][0]["PolicyDocument"]["Statement"][0];
    assert_eq!((statement["Action"].as_str(), statement["Resource"]["!GetAtt"].as_str()), (Some("sqs:SendMessage"), Some("IngestQueue.Arn")), "the rule may only send to its queue");
    let queue = template().properties_json("IngestQueue").unwrap();
    assert_eq!(queue["RedrivePolicy"]["deadLetterTargetArn"]["!GetAtt"], "FailedEventsQueue.Arn", "what keeps failing is kept where FailedEventsAlarm sees it");
    let consumer = template().properties_json("FhirIngestQueueFunction").unwrap();
    let source = &consumer["Events"]["Queue"]["Properties"];
    assert_eq!(source["FunctionResponseTypes"], serde_json::json!(["ReportBatchItemFailures"]));
    assert_eq!(source["Queue"]["!GetAtt"], "IngestQueue.Arn");
    // The consumer may do what fhir-ingest may, and take from its queue.
    let direct = template().properties_json("FhirIngestFunction").unwrap();
    let sids = |props: &serde_json::Value| props["Policies"][0]["Statement"].as_array().unwrap().iter().map(|s| s["Sid"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let mut expected = sids(&direct);
    expected.insert(0, "TakeQueuedMeasurements".into());
    assert_eq!(sids(&consumer), expected);
}
