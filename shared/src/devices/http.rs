//! The device admin routes (role `admin`), one function each:
//!
//! | route | function |
//! |---|---|
//! | `POST /admin/devices` | `admin-devices-register` |
//! | `GET /admin/devices` | `admin-devices-list` |
//! | `GET /admin/devices/{thingName}` | `admin-devices-get` |
//! | `PUT /admin/devices/{thingName}/patient` | `admin-devices-assign` |
//! | `DELETE /admin/devices/{thingName}/patient` | `admin-devices-unassign` |
//! | `PUT /admin/devices/{thingName}/status` | `admin-devices-status` |

use chrono::Utc;
use lambda_http::Request;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{CertificateControl, Device, DeviceRegistry, DeviceStatus};
use crate::access::{require, Role};
use crate::fhir::is_valid_id;
use crate::platform::http::{json_body, limit_param, path_param, query_param, ApiError, Reply};
use crate::platform::time::format_utc;
use crate::wiring::{FromWiring, Wiring, WiringError};

/// A device as the API shows it.
pub fn device_json(d: &Device) -> Value {
    json!({
        "thingName": d.thing_name,
        "serialNumber": d.serial_number,
        "manufacturer": d.manufacturer,
        "model": d.model,
        "displayName": d.display_name,
        "patientId": d.patient_id,
        "mayNamePatient": d.may_name_patient,
        "status": d.status.as_str(),
        "certificateId": d.certificate_id,
        "firmware": d.firmware.as_ref().map(|f| json!({
            "firmwareId": f.firmware_id, "version": f.version, "deploymentId": f.deployment_id, "installedAt": f.installed_at,
        })),
        "createdAt": d.created_at,
        "updatedAt": d.updated_at,
    })
}

fn text_field(value: &str, field: &str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(ApiError::bad(field, format!("must be 1 to {max} printable characters")));
    }
    Ok(v.to_owned())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Registration {
    serial_number: String,
    manufacturer: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    may_name_patient: bool,
}

/// `POST /admin/devices`: registers a device so that it may provision itself.
pub async fn register<D: DeviceRegistry>(request: Request, devices: &D) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let r: Registration = json_body(&request)?;
    let serial = text_field(&r.serial_number, "serialNumber", 128)?;
    let manufacturer = text_field(&r.manufacturer, "manufacturer", 128)?;
    let model = if r.model.is_empty() { String::new() } else { text_field(&r.model, "model", 128)? };
    let name = if r.display_name.is_empty() { String::new() } else { text_field(&r.display_name, "displayName", 256)? };
    let mut device = Device::registered(&manufacturer, &serial, &model, &name, &format_utc(Utc::now()));
    device.may_name_patient = r.may_name_patient;
    if device.thing_name.is_empty() {
        return Err(ApiError::bad("serialNumber", "manufacturer and serial number give an empty thing name"));
    }
    if devices.find_by_serial(&manufacturer, &serial).await?.is_some() {
        return Err(ApiError::Conflict(format!("{manufacturer} {serial} is already registered")));
    }
    if !devices.create(&device).await? {
        return Err(ApiError::Conflict(format!("thing name {} is already taken", device.thing_name)));
    }
    tracing::info!(thing_name = %device.thing_name, "device registered");
    Ok((201, device_json(&device)))
}

/// `GET /admin/devices?limit=&next=`: a page of devices.
pub async fn list<D: DeviceRegistry>(request: Request, devices: &D) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let limit = limit_param(&request, 25, 100)?;
    let (page, next) = devices.list(limit, query_param(&request, "next").as_deref()).await?;
    Ok((200, json!({"devices": page.iter().map(device_json).collect::<Vec<_>>(), "next": next})))
}

async fn existing<D: DeviceRegistry>(devices: &D, thing: &str) -> Result<Device, ApiError> {
    devices.get(thing).await?.ok_or_else(|| ApiError::NotFound(format!("no device {thing}")))
}

/// `GET /admin/devices/{thingName}`
pub async fn get<D: DeviceRegistry>(request: Request, devices: &D) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let thing = path_param(&request, "thingName")?;
    Ok((200, device_json(&existing(devices, &thing).await?)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Assignment {
    patient_id: String,
}

/// `PUT /admin/devices/{thingName}/patient` with `{"patientId"}`.
pub async fn assign_patient<D: DeviceRegistry>(request: Request, devices: &D) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let thing = path_param(&request, "thingName")?;
    let a: Assignment = json_body(&request)?;
    if !is_valid_id(&a.patient_id) {
        return Err(ApiError::bad("patientId", "must be a FHIR id (1-64 letters, digits, '-' or '.')"));
    }
    let device = devices.set_patient(&thing, Some(&a.patient_id), &format_utc(Utc::now())).await?;
    let device = device.ok_or_else(|| ApiError::NotFound(format!("no device {thing}")))?;
    Ok((200, device_json(&device)))
}

/// `DELETE /admin/devices/{thingName}/patient`
pub async fn unassign_patient<D: DeviceRegistry>(request: Request, devices: &D) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let thing = path_param(&request, "thingName")?;
    let device = devices.set_patient(&thing, None, &format_utc(Utc::now())).await?;
    let device = device.ok_or_else(|| ApiError::NotFound(format!("no device {thing}")))?;
    Ok((200, device_json(&device)))
}

/// What the status route needs: the registry and the IoT certificates.
pub struct StatusDeps<D, C> {
    pub devices: D,
    pub certificates: C,
}

impl<D: FromWiring, C: FromWiring> FromWiring for StatusDeps<D, C> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { devices: w.build()?, certificates: w.build()? })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    status: String,
}

/// `PUT /admin/devices/{thingName}/status` with `{"status": "ACTIVE" | "INACTIVE" | "BLOCKED"}`.
/// Only an ACTIVE device files readings. A device becomes ACTIVE by itself when it provisions
/// or gets its first API key; an operator activates one that has neither (a gateway that only
/// drops inbox files). Deactivating or blocking also makes the device's certificate inactive,
/// so it can no longer connect; reactivating makes it active again. A blocked device cannot be
/// reactivated: it must be registered anew.
pub async fn set_status<D: DeviceRegistry, C: CertificateControl>(request: Request, deps: &StatusDeps<D, C>) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let thing = path_param(&request, "thingName")?;
    let change: StatusChange = json_body(&request)?;
    let status = match DeviceStatus::parse(&change.status) {
        Some(s @ (DeviceStatus::Active | DeviceStatus::Inactive | DeviceStatus::Blocked)) => s,
        _ => return Err(ApiError::bad("status", "must be ACTIVE, INACTIVE or BLOCKED")),
    };
    let current = existing(&deps.devices, &thing).await?;
    if current.status == DeviceStatus::Blocked && status != DeviceStatus::Blocked {
        return Err(ApiError::Conflict(format!("device {thing} is blocked for good; register it anew")));
    }
    // The certificate first: a device marked inactive must not still be able to connect.
    if let Some(certificate) = &current.certificate_id {
        deps.certificates.set_active(certificate, status == DeviceStatus::Active).await?;
    }
    let device = deps.devices.set_status(&thing, status, &format_utc(Utc::now())).await?;
    let device = device.ok_or_else(|| ApiError::NotFound(format!("no device {thing}")))?;
    if device.status != status {
        // Blocked between our read and our write: the certificate goes off again.
        if let Some(certificate) = &device.certificate_id {
            deps.certificates.set_active(certificate, false).await?;
        }
        return Err(ApiError::Conflict(format!("device {thing} is blocked for good; register it anew")));
    }
    tracing::info!(thing_name = %thing, status = status.as_str(), "device status changed");
    Ok((200, device_json(&device)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::memory::{MemoryCertificates, MemoryDevices};
    use crate::platform::testing::{self, answered, Answered, ApiRequest};

    fn registration(body: Value) -> ApiRequest {
        ApiRequest::new("POST /admin/devices").json(body).caller(testing::admin())
    }

    fn on_device(route: &str, thing: &str) -> ApiRequest {
        ApiRequest::new(route).path("thingName", thing).caller(testing::admin())
    }

    /// A device in `status`, with a certificate when given.
    fn device(serial: &str, status: DeviceStatus, certificate: Option<&str>) -> Device {
        let mut d = Device::registered("Acme", serial, "BP-200", "", "2026-11-01T00:00:00.000Z");
        d.status = status;
        d.certificate_id = certificate.map(Into::into);
        d
    }

    #[tokio::test]
    async fn a_registered_device_is_named_from_its_maker_and_serial_and_can_be_read_back() {
        let devices = MemoryDevices::default();
        let body = json!({"serialNumber": " SN 0001 ", "manufacturer": "Acme Medical", "model": "BP-200", "displayName": "Ward 3 cuff", "mayNamePatient": true});
        let answer = answered(register(registration(body).build(), &devices).await);
        assert_eq!(answer.status, 201, "{}", answer.body);
        assert_eq!(answer.body["thingName"], json!("acme-medical-sn-0001"));
        assert_eq!(answer.body["serialNumber"], json!("SN 0001"), "trimmed");
        assert_eq!((answer.body["status"].as_str(), answer.body["mayNamePatient"].as_bool()), (Some("REGISTERED"), Some(true)));
        assert_eq!((&answer.body["patientId"], &answer.body["certificateId"]), (&Value::Null, &Value::Null));
        let stored = devices.get("acme-medical-sn-0001").await.unwrap().unwrap();
        assert_eq!(device_json(&stored), answer.body);
        let read = answered(get(on_device("GET /admin/devices/{thingName}", "acme-medical-sn-0001").build(), &devices).await);
        assert_eq!((read.status, &read.body), (200, &answer.body));
        let missing = answered(get(on_device("GET /admin/devices/{thingName}", "acme-medical-sn-0002").build(), &devices).await);
        assert_eq!((missing.status, missing.error_code()), (404, Some("NOT_FOUND")));
    }

    #[tokio::test]
    async fn a_serial_number_or_thing_name_is_registered_once() {
        let devices = MemoryDevices::default();
        let first = answered(register(registration(json!({"serialNumber": "SN-1", "manufacturer": "Acme"})).build(), &devices).await);
        assert_eq!(first.status, 201);
        for (manufacturer, serial) in [("ACME", "SN-1"), ("Acme", "sn-1"), ("acme!", "SN 1")] {
            let again = answered(register(registration(json!({"serialNumber": serial, "manufacturer": manufacturer})).build(), &devices).await);
            assert_eq!((again.status, again.error_code()), (409, Some("CONFLICT")), "{manufacturer} {serial}");
        }
        assert_eq!(devices.get("acme-sn-1").await.unwrap().unwrap().created_at, first.body["createdAt"].as_str().unwrap(), "the first stays");
        let (all, _) = devices.list(10, None).await.unwrap();
        assert_eq!(all.len(), 1);
    }

    #[tokio::test]
    async fn a_bad_registration_names_its_field_and_registers_nothing() {
        let devices = MemoryDevices::default();
        let cases = [
            (json!({"manufacturer": "Acme"}), "body"),
            (json!({"serialNumber": "  ", "manufacturer": "Acme"}), "serialNumber"),
            (json!({"serialNumber": "1", "manufacturer": "A".repeat(129)}), "manufacturer"),
            (json!({"serialNumber": "1", "manufacturer": "Acme", "model": "\u{7}"}), "model"),
            (json!({"serialNumber": "1", "manufacturer": "Acme", "displayName": "d".repeat(257)}), "displayName"),
            (json!({"serialNumber": "1", "manufacturer": "Acme", "colour": "red"}), "body"),
            (json!({"serialNumber": "!!!", "manufacturer": "???"}), "serialNumber"),
        ];
        for (body, field) in cases {
            let answer = answered(register(registration(body.clone()).build(), &devices).await);
            assert_eq!((answer.status, answer.error_code(), answer.error_field()), (400, Some("BAD_REQUEST"), Some(field)), "{body}");
        }
        assert!(devices.list(10, None).await.unwrap().0.is_empty());
    }

    #[tokio::test]
    async fn devices_page_with_the_next_cursor() {
        let devices = MemoryDevices::with(["1", "2", "3"].map(|s| device(s, DeviceStatus::Registered, None)).to_vec());
        let page = |next: Option<&str>| {
            let request = ApiRequest::new("GET /admin/devices").query("limit", "2").caller(testing::admin());
            match next {
                Some(n) => request.query("next", n),
                None => request,
            }
            .build()
        };
        let names =
            |a: &Answered| a.body["devices"].as_array().unwrap().iter().map(|d| d["thingName"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
        let first = answered(list(page(None), &devices).await);
        let second = answered(list(page(first.body["next"].as_str()), &devices).await);
        let mut seen = names(&first);
        assert_eq!(seen.len(), 2);
        seen.extend(names(&second));
        seen.sort();
        assert_eq!(seen, ["acme-1", "acme-2", "acme-3"], "every device once");
        assert_eq!(second.body["next"], Value::Null);
        let too_many = answered(list(ApiRequest::new("GET /admin/devices").query("limit", "101").caller(testing::admin()).build(), &devices).await);
        assert_eq!(too_many.error_field(), Some("limit"));
    }

    #[tokio::test]
    async fn a_patient_is_assigned_and_unassigned() {
        let devices = MemoryDevices::with(vec![device("1", DeviceStatus::Active, None)]);
        let assigned = answered(
            assign_patient(on_device("PUT /admin/devices/{thingName}/patient", "acme-1").json(json!({"patientId": "pat-1"})).build(), &devices).await,
        );
        assert_eq!((assigned.status, assigned.body["patientId"].as_str()), (200, Some("pat-1")));
        assert_eq!(devices.get("acme-1").await.unwrap().unwrap().patient_id.as_deref(), Some("pat-1"));
        let bad = answered(
            assign_patient(on_device("PUT /admin/devices/{thingName}/patient", "acme-1").json(json!({"patientId": "pat 2"})).build(), &devices).await,
        );
        assert_eq!((bad.status, bad.error_field()), (400, Some("patientId")));
        assert_eq!(devices.get("acme-1").await.unwrap().unwrap().patient_id.as_deref(), Some("pat-1"), "unchanged");
        let unknown = answered(
            assign_patient(on_device("PUT /admin/devices/{thingName}/patient", "acme-9").json(json!({"patientId": "pat-1"})).build(), &devices).await,
        );
        assert_eq!(unknown.status, 404);
        assert_eq!(devices.get("acme-9").await.unwrap(), None, "an assignment creates no device");
        let unassigned = answered(unassign_patient(on_device("DELETE /admin/devices/{thingName}/patient", "acme-1").build(), &devices).await);
        assert_eq!((unassigned.status, &unassigned.body["patientId"]), (200, &Value::Null));
        assert_eq!(devices.get("acme-1").await.unwrap().unwrap().patient_id, None);
        assert_eq!(answered(unassign_patient(on_device("DELETE /admin/devices/{thingName}/patient", "acme-9").build(), &devices).await).status, 404);
    }

    type Status = StatusDeps<MemoryDevices, MemoryCertificates>;

    async fn change_status(deps: &Status, thing: &str, status: &str) -> Answered {
        answered(set_status(on_device("PUT /admin/devices/{thingName}/status", thing).json(json!({"status": status})).build(), deps).await)
    }

    async fn status_of(deps: &Status, thing: &str) -> DeviceStatus {
        deps.devices.get(thing).await.unwrap().unwrap().status
    }

    fn certificate_active(deps: &Status, id: &str) -> Option<bool> {
        deps.certificates.0.lock().unwrap().get(id).copied()
    }

    #[tokio::test]
    async fn deactivating_switches_the_certificate_off_and_reactivating_on() {
        let deps = StatusDeps {
            devices: MemoryDevices::with(vec![device("1", DeviceStatus::Active, Some("cert-1")), device("2", DeviceStatus::Registered, None)]),
            certificates: MemoryCertificates::with(&[("cert-1", true)]),
        };
        let inactive = change_status(&deps, "acme-1", "INACTIVE").await;
        assert_eq!((inactive.status, inactive.body["status"].as_str()), (200, Some("INACTIVE")));
        assert_eq!(certificate_active(&deps, "cert-1"), Some(false));
        let active = change_status(&deps, "acme-1", "ACTIVE").await;
        assert_eq!((active.status, active.body["status"].as_str()), (200, Some("ACTIVE")));
        assert_eq!(certificate_active(&deps, "cert-1"), Some(true));
        // A gateway without a certificate or key is activated by an operator.
        assert_eq!(change_status(&deps, "acme-2", "ACTIVE").await.status, 200);
        assert_eq!(status_of(&deps, "acme-2").await, DeviceStatus::Active);
    }

    #[tokio::test]
    async fn a_blocked_device_stays_blocked() {
        let deps = StatusDeps {
            devices: MemoryDevices::with(vec![device("1", DeviceStatus::Active, Some("cert-1"))]),
            certificates: MemoryCertificates::with(&[("cert-1", true)]),
        };
        assert_eq!(change_status(&deps, "acme-1", "BLOCKED").await.status, 200);
        assert_eq!(certificate_active(&deps, "cert-1"), Some(false));
        for status in ["ACTIVE", "INACTIVE"] {
            let refused = change_status(&deps, "acme-1", status).await;
            assert_eq!((refused.status, refused.error_code()), (409, Some("CONFLICT")), "{status}");
        }
        assert_eq!(status_of(&deps, "acme-1").await, DeviceStatus::Blocked);
        assert_eq!(certificate_active(&deps, "cert-1"), Some(false), "not switched back on");
        assert_eq!(change_status(&deps, "acme-1", "BLOCKED").await.status, 200, "blocking again is harmless");
    }

    /// Blocks the device when its certificate is switched on: a block landing between the
    /// route's read of the device and its write.
    struct BlockedMeanwhile {
        certificates: MemoryCertificates,
        devices: MemoryDevices,
    }

    impl CertificateControl for BlockedMeanwhile {
        async fn set_active(&self, certificate_id: &str, active: bool) -> Result<(), crate::StoreError> {
            if active {
                self.devices.set_status("acme-1", DeviceStatus::Blocked, "2026-12-01T12:00:00.000Z").await?;
            }
            self.certificates.set_active(certificate_id, active).await
        }
        async fn is_active(&self, certificate_id: &str) -> Result<bool, crate::StoreError> {
            self.certificates.is_active(certificate_id).await
        }
    }

    #[tokio::test]
    async fn an_activation_racing_a_block_loses_and_leaves_the_certificate_off() {
        let devices = MemoryDevices::with(vec![device("1", DeviceStatus::Inactive, Some("cert-1"))]);
        let deps = StatusDeps {
            devices: devices.clone(),
            certificates: BlockedMeanwhile { certificates: MemoryCertificates::with(&[("cert-1", false)]), devices },
        };
        let request = on_device("PUT /admin/devices/{thingName}/status", "acme-1").json(json!({"status": "ACTIVE"}));
        let answer = answered(set_status(request.build(), &deps).await);
        assert_eq!((answer.status, answer.error_code()), (409, Some("CONFLICT")));
        assert_eq!(deps.devices.get("acme-1").await.unwrap().unwrap().status, DeviceStatus::Blocked);
        assert_eq!(deps.certificates.certificates.0.lock().unwrap().get("cert-1"), Some(&false));
    }

    #[tokio::test]
    async fn a_status_change_needs_a_settable_status_an_existing_device_and_its_certificate_switched_first() {
        let deps = StatusDeps {
            devices: MemoryDevices::with(vec![device("1", DeviceStatus::Active, Some("cert-gone"))]),
            certificates: MemoryCertificates::default(),
        };
        for status in ["REGISTERED", "active", ""] {
            let bad = change_status(&deps, "acme-1", status).await;
            assert_eq!((bad.status, bad.error_field()), (400, Some("status")), "{status:?}");
        }
        assert_eq!(change_status(&deps, "acme-9", "INACTIVE").await.status, 404);
        // The certificate cannot be switched off: the device is not marked inactive either.
        let unavailable = change_status(&deps, "acme-1", "INACTIVE").await;
        assert_eq!((unavailable.status, unavailable.error_code()), (503, Some("UNAVAILABLE")));
        assert_eq!(status_of(&deps, "acme-1").await, DeviceStatus::Active);
    }

    #[tokio::test]
    async fn only_admins_manage_devices() {
        let deps =
            StatusDeps { devices: MemoryDevices::with(vec![device("1", DeviceStatus::Active, None)]), certificates: MemoryCertificates::default() };
        for (caller, refusal) in [(testing::clinician(), 403), (testing::patient("pat-1"), 403), (json!({}), 401)] {
            let with = |r: ApiRequest| r.caller(caller.clone()).build();
            let answers = [
                answered(
                    register(with(ApiRequest::new("POST /admin/devices").json(json!({"serialNumber": "2", "manufacturer": "Acme"}))), &deps.devices)
                        .await,
                ),
                answered(list(with(ApiRequest::new("GET /admin/devices")), &deps.devices).await),
                answered(get(with(ApiRequest::new("GET /admin/devices/{thingName}").path("thingName", "acme-1")), &deps.devices).await),
                answered(
                    assign_patient(
                        with(ApiRequest::new("PUT /admin/devices/{thingName}/patient").path("thingName", "acme-1").json(json!({"patientId": "p"}))),
                        &deps.devices,
                    )
                    .await,
                ),
                answered(
                    unassign_patient(with(ApiRequest::new("DELETE /admin/devices/{thingName}/patient").path("thingName", "acme-1")), &deps.devices)
                        .await,
                ),
                answered(
                    set_status(
                        with(ApiRequest::new("PUT /admin/devices/{thingName}/status").path("thingName", "acme-1").json(json!({"status": "BLOCKED"}))),
                        &deps,
                    )
                    .await,
                ),
            ];
            for answer in answers {
                assert_eq!(answer.status, refusal, "{caller}: {}", answer.body);
            }
        }
        let unchanged = deps.devices.get("acme-1").await.unwrap().unwrap();
        assert_eq!((unchanged.status, unchanged.patient_id), (DeviceStatus::Active, None));
        assert_eq!(deps.devices.get("acme-2").await.unwrap(), None);
    }
}
