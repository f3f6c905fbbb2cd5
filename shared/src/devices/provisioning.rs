//! The `provisioning-hook` function: AWS IoT fleet provisioning's pre-provisioning hook.
//!
//! A device that connects with the shared claim certificate asks for its own certificate and
//! then `RegisterThing`s with its `SerialNumber` and `Manufacturer`. IoT Core calls this hook
//! (5 s budget) before creating anything. It allows the device only when an operator registered
//! that (Manufacturer, SerialNumber), the device is not blocked or inactive, and it is not
//! provisioned with another certificate; it then binds the new certificate in the registry and
//! returns the registered thing name as the `ThingName` override.
//!
//! The device only ever sees ACCESS_DENIED (as on AWS); the precise reason is kept as a dead
//! letter (source `provisioning-hook`) for the operator.

use std::collections::BTreeMap;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{CertificateBinding, CertificateControl, DeviceRegistry};
use crate::dead_letters::{DeadLetter, DeadLetterStore};
use crate::platform::time::format_utc;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// The dead-letter source name of this function.
pub const SOURCE: &str = "provisioning-hook";

/// The hook's event, as AWS IoT sends it (payload version 2020-04-01).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookRequest {
    #[serde(default)]
    pub claim_certificate_id: String,
    pub certificate_id: String,
    #[serde(default)]
    pub certificate_pem: String,
    #[serde(default)]
    pub template_arn: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

/// The hook's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookResponse {
    pub allow_provisioning: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameter_overrides: BTreeMap<String, String>,
}

impl HookResponse {
    fn deny() -> Self {
        Self { allow_provisioning: false, parameter_overrides: BTreeMap::new() }
    }
}

/// Why provisioning was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("parameter {0} is missing or empty")]
    MissingParameter(&'static str),
    #[error("no device with manufacturer '{manufacturer}' and serial number '{serial}' was registered by an operator")]
    NotRegistered { manufacturer: String, serial: String },
    #[error("device '{thing}' is {status}")]
    NotProvisionable { thing: String, status: &'static str },
    #[error("device '{thing}' is already provisioned with certificate {certificate}")]
    AlreadyProvisioned { thing: String, certificate: String },
    #[error("device '{0}' was removed while provisioning")]
    Removed(String),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::MissingParameter(_) => "MISSING_PARAMETER",
            Refusal::NotRegistered { .. } => "NOT_REGISTERED",
            Refusal::NotProvisionable { .. } => "NOT_PROVISIONABLE",
            Refusal::AlreadyProvisioned { .. } => "ALREADY_PROVISIONED",
            Refusal::Removed(_) => "NOT_REGISTERED",
        }
    }
}

/// What the hook needs.
pub struct HookDeps<D, C, L> {
    pub devices: D,
    /// To tell a bound certificate that never became usable from one in use.
    pub certificates: C,
    pub dead_letters: L,
}

impl<D: FromWiring, C: FromWiring, L: FromWiring> FromWiring for HookDeps<D, C, L> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { devices: w.build()?, certificates: w.build()?, dead_letters: w.build()? })
    }
}

/// Decides one provisioning request. A storage failure is an error: IoT Core then refuses the
/// device, which may simply try again.
pub async fn handle<D: DeviceRegistry, C: CertificateControl, L: DeadLetterStore>(
    request: &HookRequest,
    deps: &HookDeps<D, C, L>,
) -> Result<HookResponse, StoreError> {
    let now = format_utc(Utc::now());
    match decide(request, deps, &now).await? {
        Ok(thing_name) => {
            tracing::info!(thing_name = %thing_name, certificate_id = %request.certificate_id, "provisioning allowed");
            let overrides = BTreeMap::from([("ThingName".to_owned(), thing_name)]);
            Ok(HookResponse { allow_provisioning: true, parameter_overrides: overrides })
        }
        Err(refusal) => {
            let raw = serde_json::to_string(request).map_err(|e| StoreError::new("serialize hook event", e))?;
            // No thing exists yet: the record is found by source, and names the serial number.
            let letter = DeadLetter::refused(SOURCE, None, refusal.code(), refusal.to_string(), raw, now);
            deps.dead_letters.record(&letter).await?;
            tracing::warn!(certificate_id = %request.certificate_id, reason_code = refusal.code(), dead_letter_id = %letter.id, "provisioning refused");
            Ok(HookResponse::deny())
        }
    }
}

/// How long after the hook bound a certificate RegisterThing has to activate it: the hook has
/// five seconds and activation follows at once, so a certificate still inactive after this is
/// from a RegisterThing that failed. Within it, a second claim of the device is a concurrent one
/// and is refused, so that one certificate alone owns a device.
pub const REBIND_AFTER: chrono::Duration = chrono::Duration::minutes(2);

/// Whether the device's bound certificate is old enough to be replaced if it never became active.
fn may_replace(device: &crate::devices::Device, now: &str) -> bool {
    let parse = crate::platform::time::parse_with_offset;
    match (device.certificate_bound_at.as_deref().and_then(parse), parse(now)) {
        (Some(bound), Some(now)) => now - bound >= REBIND_AFTER,
        // Bound before binding times were kept: long ago.
        (None, _) => true,
        (Some(_), None) => false,
    }
}

/// A device whose RegisterThing failed after this hook bound its certificate holds a
/// certificate that never became ACTIVE: once [`REBIND_AFTER`] has passed it may provision again,
/// replacing it. A bound certificate in use (or switched off by an operator, with its device)
/// is never replaced.
async fn decide<D: DeviceRegistry, C: CertificateControl, L>(
    request: &HookRequest,
    deps: &HookDeps<D, C, L>,
    now: &str,
) -> Result<Result<String, Refusal>, StoreError> {
    let param = |name: &'static str| {
        request.parameters.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()).ok_or(Refusal::MissingParameter(name))
    };
    let (manufacturer, serial) = match (param("Manufacturer"), param("SerialNumber")) {
        (Ok(m), Ok(s)) => (m, s),
        (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
    };
    let Some(device) = deps.devices.find_by_serial(manufacturer, serial).await? else {
        return Ok(Err(Refusal::NotRegistered { manufacturer: manufacturer.to_owned(), serial: serial.to_owned() }));
    };
    let thing = device.thing_name.clone();
    let replacing = match &device.certificate_id {
        Some(bound) if *bound != request.certificate_id && may_replace(&device, now) && !deps.certificates.is_active(bound).await? => {
            Some(bound.as_str())
        }
        _ => None,
    };
    Ok(match deps.devices.bind_certificate(&thing, &request.certificate_id, replacing, now).await? {
        CertificateBinding::Bound => {
            if let Some(old) = replacing {
                tracing::info!(thing_name = %thing, replaced = old, "a certificate that never became active was replaced");
            }
            Ok(thing)
        }
        CertificateBinding::TakenBy(certificate) => Err(Refusal::AlreadyProvisioned { thing, certificate }),
        CertificateBinding::NotProvisionable(status) => Err(Refusal::NotProvisionable { thing, status: status.as_str() }),
        CertificateBinding::Missing => Err(Refusal::Removed(thing)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letters::memory::MemoryDeadLetters;
    use crate::devices::memory::{MemoryCertificates, MemoryDevices};
    use crate::devices::{Device, DeviceStatus};

    fn registered(serial: &str, status: DeviceStatus, cert: Option<&str>) -> Device {
        let mut d = Device::registered("Acme Medical", serial, "BP-200", "", "");
        d.status = status;
        d.certificate_id = cert.map(Into::into);
        d
    }

    fn request(manufacturer: &str, serial: &str, cert: &str) -> HookRequest {
        HookRequest {
            claim_certificate_id: "claim".into(),
            certificate_id: cert.into(),
            certificate_pem: "-----BEGIN CERTIFICATE-----".into(),
            template_arn: "arn:aws:iot:eu-west-1:123456789012:provisioningtemplate/DefaultProvisioningTemplate".into(),
            client_id: "client".into(),
            parameters: BTreeMap::from([
                ("Manufacturer".into(), manufacturer.into()),
                ("SerialNumber".into(), serial.into()),
            ]),
        }
    }

    type Deps = HookDeps<MemoryDevices, MemoryCertificates, MemoryDeadLetters>;

    fn deps(devices: Vec<Device>) -> Deps {
        let certificates = MemoryCertificates::with(&[("cert-old", true), ("cert-pending", false)]);
        HookDeps { devices: MemoryDevices::with(devices), certificates, dead_letters: MemoryDeadLetters::default() }
    }

    fn reason(d: &Deps) -> Vec<String> {
        d.dead_letters.all().into_iter().map(|l| l.reason_code).collect()
    }

    #[tokio::test]
    async fn a_registered_device_is_allowed_with_its_thing_name() {
        let d = deps(vec![registered("0001", DeviceStatus::Registered, None)]);
        let answer = handle(&request("acme medical", "0001", "cert-a"), &d).await.unwrap();
        assert!(answer.allow_provisioning);
        assert_eq!(answer.parameter_overrides["ThingName"], "acme-medical-0001");
        let device = d.devices.get("acme-medical-0001").await.unwrap().unwrap();
        assert_eq!((device.status, device.certificate_id.as_deref()), (DeviceStatus::Active, Some("cert-a")));
        // The same certificate again (a retried RegisterThing) is still allowed.
        assert!(handle(&request("Acme Medical", "0001", "cert-a"), &d).await.unwrap().allow_provisioning);
    }

    #[tokio::test]
    async fn refusals_are_denied_and_kept_with_their_reason() {
        let d = deps(vec![
            registered("0002", DeviceStatus::Blocked, None),
            registered("0003", DeviceStatus::Inactive, None),
            registered("0004", DeviceStatus::Active, Some("cert-old")),
        ]);
        for (serial, cert) in [("9999", "c1"), ("0002", "c2"), ("0003", "c3"), ("0004", "c4")] {
            let answer = handle(&request("Acme Medical", serial, cert), &d).await.unwrap();
            assert_eq!(answer, HookResponse::deny(), "{serial}");
        }
        let mut missing = request("Acme Medical", "0005", "c5");
        missing.parameters.remove("SerialNumber");
        assert!(!handle(&missing, &d).await.unwrap().allow_provisioning);
        let mut codes = reason(&d);
        codes.sort();
        assert_eq!(codes, ["ALREADY_PROVISIONED", "MISSING_PARAMETER", "NOT_PROVISIONABLE", "NOT_PROVISIONABLE", "NOT_REGISTERED"]);
        let blocked = d.dead_letters.all().into_iter().find(|l| l.reason.contains("0002")).unwrap();
        assert_eq!(blocked.reason, "device 'acme-medical-0002' is BLOCKED");
        assert_eq!(d.devices.get("acme-medical-0004").await.unwrap().unwrap().certificate_id.as_deref(), Some("cert-old"));
    }

    #[tokio::test]
    async fn a_bound_certificate_that_never_became_active_is_replaced_but_one_in_use_is_not() {
        let long_ago = |mut d: Device| {
            d.certificate_bound_at = Some("2026-11-01T00:00:00.000Z".into());
            d
        };
        let mut just_now = registered("0009", DeviceStatus::Active, Some("cert-pending"));
        just_now.certificate_bound_at = Some(format_utc(Utc::now()));
        let d = deps(vec![
            long_ago(registered("0006", DeviceStatus::Active, Some("cert-pending"))),
            long_ago(registered("0007", DeviceStatus::Active, Some("cert-old"))),
            long_ago(registered("0008", DeviceStatus::Active, Some("cert-gone"))),
            just_now,
        ]);
        assert!(handle(&request("Acme Medical", "0006", "cert-retry"), &d).await.unwrap().allow_provisioning);
        let device = d.devices.get("acme-medical-0006").await.unwrap().unwrap();
        assert_eq!(device.certificate_id.as_deref(), Some("cert-retry"));
        assert!(!handle(&request("Acme Medical", "0007", "cert-thief"), &d).await.unwrap().allow_provisioning, "an active certificate stays");
        assert_eq!(d.devices.get("acme-medical-0007").await.unwrap().unwrap().certificate_id.as_deref(), Some("cert-old"));
        assert!(handle(&request("Acme Medical", "0008", "cert-new"), &d).await.unwrap().allow_provisioning, "a deleted certificate is not in use");
        let concurrent = handle(&request("Acme Medical", "0009", "cert-concurrent"), &d).await.unwrap();
        assert!(!concurrent.allow_provisioning, "a claim while the first one may still be activating is refused");
    }
}
