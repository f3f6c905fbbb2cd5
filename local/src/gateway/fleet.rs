//! The fleet-provisioning MQTT API (`$aws/certificates/...`, `$aws/provisioning-templates/...`)
//! as AWS IoT Core answers it, applying `infra/iot/provisioning-template.json` after the
//! pre-provisioning hook allows the device.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use vitalwire::devices::provisioning::{HookRequest, HookResponse};
use vitalwire::platform::stack::Template;

use super::pki::{certificate_id, pem_to_der};
use super::registry::{Certificate, CertificateStatus};
use super::{Gateway, Identity};

/// The answer to a provisioning request: `accepted` or `rejected` payload.
pub type Reply = Result<Value, Value>;

fn rejected(status: u16, code: &str, message: impl Into<String>) -> Value {
    json!({"statusCode": status, "errorCode": code, "errorMessage": message.into()})
}

/// Random hex from the operating system's source: ownership tokens must be unguessable.
pub fn random_hex(bytes: usize) -> Result<String, Value> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| rejected(500, "InternalError", format!("no randomness: {e}")))?;
    Ok(hex::encode(buf))
}

/// What `provisioning-template.json` says to create.
#[derive(Debug, Clone)]
pub struct TemplatePlan {
    /// The parameter that names the thing (`{"Ref": ...}` of the thing's `ThingName`).
    pub thing_name_parameter: String,
    pub policy_name: String,
    /// Parameters the template declares, with their defaults.
    pub parameters: BTreeMap<String, Option<String>>,
}

impl TemplatePlan {
    /// Reads the plan from a provisioning template body.
    pub fn from_body(body: &Value) -> Result<Self, String> {
        let resources = body.get("Resources").and_then(Value::as_object).ok_or("no Resources")?;
        let of_type = |t: &str| resources.values().find(|r| r.get("Type").and_then(Value::as_str) == Some(t));
        let thing_name_parameter = of_type("AWS::IoT::Thing")
            .and_then(|r| r.pointer("/Properties/ThingName/Ref"))
            .and_then(Value::as_str)
            .ok_or("no AWS::IoT::Thing with ThingName {\"Ref\": ...}")?
            .to_owned();
        let policy_name = of_type("AWS::IoT::Policy")
            .and_then(|r| r.pointer("/Properties/PolicyName"))
            .and_then(Value::as_str)
            .ok_or("no AWS::IoT::Policy with a PolicyName")?
            .to_owned();
        let parameters = body
            .get("Parameters")
            .and_then(Value::as_object)
            .map(|p| {
                p.iter()
                    .map(|(k, v)| (k.clone(), v.get("Default").and_then(Value::as_str).map(str::to_owned)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self { thing_name_parameter, policy_name, parameters })
    }
}

/// What `RegisterThing` creates with a template, and the hook it asks first.
#[derive(Debug, Clone)]
pub struct Provisioning {
    pub plan: TemplatePlan,
    /// The provisioning template's name (`TemplateName` in `template.yaml`).
    pub template_name: String,
    /// The function of the template's pre-provisioning hook.
    pub hook: &'static str,
}

impl Provisioning {
    /// From the template's `DefaultProvisioningTemplate`, its body in `infra/iot/`, and the hook.
    pub fn from_template(template: &Template, body: &Value, hook: &'static str) -> Result<Self, String> {
        let plan = TemplatePlan::from_body(body).map_err(|e| format!("provisioning-template.json: {e}"))?;
        let template_name = template
            .properties_json("DefaultProvisioningTemplate")
            .and_then(|p| p["TemplateName"].as_str().map(str::to_owned))
            .ok_or("template.yaml has no DefaultProvisioningTemplate")?;
        Ok(Self { plan, template_name, hook })
    }
}

/// `$aws/certificates/create/json`
pub fn create_keys_and_certificate(gw: &Gateway) -> Reply {
    let issued = gw.pki.create_keys_and_certificate().map_err(|e| rejected(500, "InternalError", e.to_string()))?;
    let id = register_pending(gw, &issued.certificate_pem)?;
    let token = random_hex(64)?;
    gw.registry.issue_token(&id, token.clone());
    Ok(json!({
        "certificateId": id,
        "certificatePem": issued.certificate_pem,
        "privateKey": issued.private_key_pem,
        "certificateOwnershipToken": token,
    }))
}

/// `$aws/certificates/create-from-csr/json`
pub fn create_certificate_from_csr(gw: &Gateway, payload: &Value) -> Reply {
    let csr = payload
        .get("certificateSigningRequest")
        .and_then(Value::as_str)
        .ok_or_else(|| rejected(400, "InvalidPayload", "certificateSigningRequest is required"))?;
    let pem = gw.pki.sign_csr(csr).map_err(|e| rejected(400, "InvalidCsr", format!("the CSR is not valid: {e}")))?;
    let id = register_pending(gw, &pem)?;
    let token = random_hex(64)?;
    gw.registry.issue_token(&id, token.clone());
    Ok(json!({"certificateId": id, "certificatePem": pem, "certificateOwnershipToken": token}))
}

fn register_pending(gw: &Gateway, pem: &str) -> Result<String, Value> {
    register_certificate(gw, pem, CertificateStatus::PendingActivation).ok_or_else(|| rejected(500, "InternalError", "issued certificate is not PEM"))
}

/// Registers a certificate the local CA issued; its id, `None` if `pem` is not a certificate.
pub(super) fn register_certificate(gw: &Gateway, pem: &str, status: CertificateStatus) -> Option<String> {
    let der = pem_to_der(pem)?;
    let id = certificate_id(&der);
    gw.registry.insert(Certificate {
        id: id.clone(),
        pem: pem.to_owned(),
        status,
        things: Vec::new(),
        policies: Vec::new(),
        created_at: chrono::Utc::now().timestamp(),
    });
    Some(id)
}

/// `$aws/provisioning-templates/<name>/provision/json`
pub async fn register_thing(gw: &Gateway, identity: &Identity, template_name: &str, payload: &Value) -> Reply {
    let provisioning = &gw.provisioning;
    if template_name != provisioning.template_name {
        return Err(rejected(404, "ResourceNotFound", format!("provisioning template {template_name} does not exist")));
    }
    let token = payload
        .get("certificateOwnershipToken")
        .and_then(Value::as_str)
        .ok_or_else(|| rejected(400, "InvalidPayload", "certificateOwnershipToken is required"))?;
    let certificate_id =
        gw.registry.redeem_token(token).map_err(|e| rejected(400, "InvalidCertificateOwnershipToken", e.to_string()))?;
    let certificate = gw
        .registry
        .certificate(&certificate_id)
        .ok_or_else(|| rejected(400, "InvalidCertificateOwnershipToken", "the token's certificate no longer exists"))?;
    let mut parameters: BTreeMap<String, String> = BTreeMap::new();
    if let Some(given) = payload.get("parameters").and_then(Value::as_object) {
        for (k, v) in given {
            let Some(v) = v.as_str() else {
                return Err(rejected(400, "InvalidParameters", format!("parameter {k} must be a string")));
            };
            parameters.insert(k.clone(), v.to_owned());
        }
    }
    let request = HookRequest {
        claim_certificate_id: identity.certificate_id.clone(),
        certificate_id: certificate_id.clone(),
        certificate_pem: certificate.pem.clone(),
        template_arn: format!("{}:provisioningtemplate/{template_name}", super::policy::ARN_PREFIX),
        client_id: identity.client_id.clone(),
        parameters: parameters.clone(),
    };
    // IoT Core invokes the hook as a Lambda function, with 5 seconds to answer.
    let hook_failed = |_| rejected(403, "AccessDenied", "ACCESS_DENIED: the pre-provisioning hook failed");
    let event = serde_json::to_string(&request).map_err(|e| rejected(500, "InternalError", e.to_string()))?;
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), gw.functions.invoke(provisioning.hook, &event))
        .await
        .map_err(|_| rejected(403, "AccessDenied", "ACCESS_DENIED: the pre-provisioning hook timed out"))?
        .map_err(hook_failed)?;
    let answer: HookResponse = serde_json::from_str(answer.get()).map_err(|e| hook_failed(e.to_string()))?;
    if !answer.allow_provisioning {
        return Err(rejected(403, "AccessDenied", "ACCESS_DENIED: the pre-provisioning hook did not allow provisioning"));
    }
    parameters.extend(answer.parameter_overrides);
    for (name, default) in &provisioning.plan.parameters {
        if name.starts_with("AWS::") || parameters.contains_key(name) {
            continue;
        }
        match default {
            Some(d) => {
                parameters.insert(name.clone(), d.clone());
            }
            None => return Err(rejected(400, "InvalidParameters", format!("parameter {name} is required"))),
        }
    }
    let thing = parameters
        .get(&provisioning.plan.thing_name_parameter)
        .cloned()
        .ok_or_else(|| rejected(400, "InvalidParameters", "no thing name"))?;
    gw.things.ensure_thing(&thing, BTreeMap::new());
    gw.registry.activate_for_thing(&certificate_id, &thing, &provisioning.plan.policy_name);
    Ok(json!({"thingName": thing, "deviceConfiguration": {}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_comes_from_the_infra_template() {
        let path = crate::repo_root().join("infra/iot/provisioning-template.json");
        let body: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let plan = TemplatePlan::from_body(&body).unwrap();
        assert_eq!(plan.thing_name_parameter, "ThingName");
        assert_eq!(plan.policy_name, "VitalwireDevicePolicy");
        assert_eq!(plan.parameters["Model"], Some(String::new()));
        assert_eq!(plan.parameters["SerialNumber"], None);
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let (a, b) = (random_hex(64).unwrap(), random_hex(64).unwrap());
        assert_eq!(a.len(), 128);
        assert_ne!(a, b);
    }
}
