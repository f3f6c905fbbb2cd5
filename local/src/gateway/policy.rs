//! AWS IoT policy evaluation for the actions a connection takes, from the policy documents in
//! `infra/iot/`. Explicit deny wins, then any allow; anything not allowed is denied.

use serde_json::Value;

use super::topics::glob_matches;

/// The region and account the local gateway pretends to be, for resource ARNs.
pub const ARN_PREFIX: &str = "arn:aws:iot:us-east-1:000000000000";

/// What policy variables resolve to for one connection.
#[derive(Debug, Clone)]
pub struct PolicyContext {
    pub client_id: String,
    /// Whether the thing named like the client id is attached to the connection's certificate.
    pub thing_attached: bool,
}

fn as_list(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn substitute(pattern: &str, ctx: &PolicyContext) -> Option<String> {
    let thing = "${iot:Connection.Thing.ThingName}";
    let client = "${iot:ClientId}";
    let mut out = pattern.to_owned();
    if out.contains(thing) {
        // IoT resolves the thing variable only for a thing attached to the certificate.
        if !ctx.thing_attached {
            return None;
        }
        out = out.replace(thing, &ctx.client_id);
    }
    Some(out.replace(client, &ctx.client_id))
}

fn conditions_hold(statement: &Value, ctx: &PolicyContext) -> bool {
    let Some(conditions) = statement.get("Condition").and_then(Value::as_object) else { return true };
    conditions.iter().all(|(operator, tests)| {
        let Some(tests) = tests.as_object() else { return false };
        tests.iter().all(|(key, expected)| match (operator.as_str(), key.as_str()) {
            ("Bool", "iot:Connection.Thing.IsAttached") => {
                as_list(Some(expected)).iter().any(|v| v.eq_ignore_ascii_case(&ctx.thing_attached.to_string()))
            }
            // Unknown conditions fail closed.
            _ => false,
        })
    })
}

fn statement_applies(statement: &Value, action: &str, resource: &str, ctx: &PolicyContext) -> bool {
    let action_ok = as_list(statement.get("Action")).iter().any(|a| glob_matches(a, action));
    action_ok
        && as_list(statement.get("Resource"))
            .iter()
            .filter_map(|r| substitute(r, ctx))
            .any(|r| glob_matches(&r, resource))
        && conditions_hold(statement, ctx)
}

/// Whether the documents allow `action` (e.g. `iot:Publish`) on `resource` (a full ARN).
pub fn allows(documents: &[Value], action: &str, resource: &str, ctx: &PolicyContext) -> bool {
    let statements: Vec<&Value> = documents
        .iter()
        .flat_map(|d| match d.get("Statement") {
            Some(Value::Array(s)) => s.iter().collect(),
            Some(s @ Value::Object(_)) => vec![s],
            _ => Vec::new(),
        })
        .collect();
    let with_effect = |effect: &'static str| {
        statements
            .iter()
            .filter(move |s| s.get("Effect").and_then(Value::as_str) == Some(effect))
            .any(|s| statement_applies(s, action, resource, ctx))
    };
    !with_effect("Deny") && with_effect("Allow")
}

/// `arn:...:topic/<topic>`
pub fn topic_arn(topic: &str) -> String {
    format!("{ARN_PREFIX}:topic/{topic}")
}

/// `arn:...:topicfilter/<filter>`
pub fn topic_filter_arn(filter: &str) -> String {
    format!("{ARN_PREFIX}:topicfilter/{filter}")
}

/// `arn:...:client/<client id>`
pub fn client_arn(client_id: &str) -> String {
    format!("{ARN_PREFIX}:client/{client_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device_policy() -> Value {
        let path = crate::repo_root().join("infra/iot/device-policy.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn ctx(client: &str, attached: bool) -> PolicyContext {
        PolicyContext { client_id: client.into(), thing_attached: attached }
    }

    #[test]
    fn a_device_acts_only_as_its_own_thing() {
        let docs = [device_policy()];
        let me = ctx("dev-1", true);
        assert!(allows(&docs, "iot:Connect", &client_arn("dev-1"), &me));
        assert!(!allows(&docs, "iot:Connect", &client_arn("dev-1"), &ctx("dev-1", false)), "thing not attached");
        assert!(allows(&docs, "iot:Publish", &topic_arn("$aws/rules/FHIRIngest"), &me));
        assert!(allows(&docs, "iot:Subscribe", &topic_filter_arn("dev-1"), &me));
        assert!(!allows(&docs, "iot:Subscribe", &topic_filter_arn("dev-2"), &me));
        assert!(!allows(&docs, "iot:Publish", &topic_arn("$aws/things/dev-2/jobs/get"), &me));
        assert!(allows(&docs, "iot:Publish", &topic_arn("$aws/things/dev-1/jobs/get"), &me));
        assert!(allows(&docs, "iot:Publish", &topic_arn("$aws/things/dev-1/shadow/name/settings/update"), &me));
        assert!(allows(&docs, "iot:Subscribe", &topic_filter_arn("$aws/things/dev-1/shadow/update/delta"), &me));
        assert!(!allows(&docs, "iot:Subscribe", &topic_filter_arn("$aws/things/dev-2/shadow/update/delta"), &me));
        assert!(!allows(&docs, "iot:Publish", &topic_arn("$aws/things/dev-2/shadow/update"), &me));
        assert!(!allows(&docs, "iot:Publish", &topic_arn("dev-2"), &me));
    }

    #[test]
    fn explicit_deny_wins() {
        let docs = [
            serde_json::json!({"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}),
            serde_json::json!({"Statement": {"Effect": "Deny", "Action": "iot:Publish", "Resource": "*:topic/secret"}}),
        ];
        assert!(!allows(&docs, "iot:Publish", &topic_arn("secret"), &ctx("c", false)));
        assert!(allows(&docs, "iot:Publish", &topic_arn("open"), &ctx("c", false)));
    }
}
