//! The device admin API (role `admin`), one route per function:
//!
//! | route | function |
//! |---|---|
//! | `POST /admin/devices` | `admin-devices-register` |
//! | `GET /admin/devices` | `admin-devices-list` |
//! | `GET /admin/devices/{thingName}` | `admin-devices-get` |
//! | `PUT /admin/devices/{thingName}/patient` | `admin-devices-assign` |
//! | `DELETE /admin/devices/{thingName}/patient` | `admin-devices-unassign` |
//! | `PUT /admin/devices/{thingName}/status` | `admin-devices-status` |
//! | `GET /admin/dead-letters` | `admin-dead-letters` |

use chrono::Utc;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{json_body, limit_param, path_param, query_param, require, respond, ApiError};
use crate::auth::Role;
use crate::dead_letters::{DeadLetter, DeadLetterStore};
use crate::devices::{CertificateControl, Device, DeviceRegistry, DeviceStatus};
use crate::fhir::is_valid_id;
use crate::time::format_utc;

/// What the admin routes need.
pub struct AdminDeps<D, L, C> {
    pub devices: D,
    pub dead_letters: L,
    pub certificates: C,
}

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

fn dead_letter_json(l: &DeadLetter) -> Value {
    json!({
        "id": l.id, "source": l.source, "thingName": l.thing_name, "reasonCode": l.reason_code,
        "reason": l.reason, "rawPayload": l.raw_payload, "receivedAt": l.received_at, "recordedAt": l.recorded_at,
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
pub async fn register_device<D: DeviceRegistry, L, C>(request: Request, deps: &AdminDeps<D, L, C>) -> Response<Body> {
    respond(async {
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
        if deps.devices.find_by_serial(&manufacturer, &serial).await?.is_some() {
            return Err(ApiError::Conflict(format!("{manufacturer} {serial} is already registered")));
        }
        if !deps.devices.create(&device).await? {
            return Err(ApiError::Conflict(format!("thing name {} is already taken", device.thing_name)));
        }
        tracing::info!(thing_name = %device.thing_name, "device registered");
        Ok((201, device_json(&device)))
    }
    .await)
}

/// `GET /admin/devices?limit=&next=`: a page of devices.
pub async fn list_devices<D: DeviceRegistry, L, C>(request: Request, deps: &AdminDeps<D, L, C>) -> Response<Body> {
    respond(async {
        require(&request, &[Role::Admin])?;
        let limit = limit_param(&request, 25, 100)?;
        let (devices, next) = deps.devices.list(limit, query_param(&request, "next").as_deref()).await?;
        Ok((200, json!({"devices": devices.iter().map(device_json).collect::<Vec<_>>(), "next": next})))
    }
    .await)
}

async fn existing<D: DeviceRegistry>(devices: &D, thing: &str) -> Result<Device, ApiError> {
    devices.get(thing).await?.ok_or_else(|| ApiError::NotFound(format!("no device {thing}")))
}

/// `GET /admin/devices/{thingName}`
pub async fn get_device<D: DeviceRegistry, L, C>(request: Request, deps: &AdminDeps<D, L, C>) -> Response<Body> {
    respond(async {
        require(&request, &[Role::Admin])?;
        let thing = path_param(&request, "thingName")?;
        Ok((200, device_json(&existing(&deps.devices, &thing).await?)))
    }
    .await)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Assignment {
    patient_id: String,
}

/// `PUT /admin/devices/{thingName}/patient` with `{"patientId"}`.
pub async fn assign_patient<D: DeviceRegistry, L, C>(request: Request, deps: &AdminDeps<D, L, C>) -> Response<Body> {
    respond(async {
        require(&request, &[Role::Admin])?;
        let thing = path_param(&request, "thingName")?;
        let a: Assignment = json_body(&request)?;
        if !is_valid_id(&a.patient_id) {
            return Err(ApiError::bad("patientId", "must be a FHIR id (1-64 letters, digits, '-' or '.')"));
        }
        let device = deps.devices.set_patient(&thing, Some(&a.patient_id), &format_utc(Utc::now())).await?;
        let device = device.ok_or_else(|| ApiError::NotFound(format!("no device {thing}")))?;
        Ok((200, device_json(&device)))
    }
    .await)
}

/// `DELETE /admin/devices/{thingName}/patient`
pub async fn unassign_patient<D: DeviceRegistry, L, C>(request: Request, deps: &AdminDeps<D, L, C>) -> Response<Body> {
    respond(async {
        require(&request, &[Role::Admin])?;
        let thing = path_param(&request, "thingName")?;
        let device = deps.devices.set_patient(&thing, None, &format_utc(Utc::now())).await?;
        let device = device.ok_or_else(|| ApiError::NotFound(format!("no device {thing}")))?;
        Ok((200, device_json(&device)))
    }
    .await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    status: String,
}

/// `PUT /admin/devices/{thingName}/status` with `{"status": "ACTIVE" | "INACTIVE" | "BLOCKED"}`.
/// Deactivating or blocking also makes the device's certificate inactive, so it can no longer
/// connect; reactivating an inactive device makes it active again. A blocked device cannot be
/// reactivated: it must be registered anew.
pub async fn set_status<D: DeviceRegistry, L, C: CertificateControl>(request: Request, deps: &AdminDeps<D, L, C>) -> Response<Body> {
    respond(async {
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
        if status == DeviceStatus::Active && current.certificate_id.is_none() {
            return Err(ApiError::Conflict(format!("device {thing} has no certificate yet: it becomes ACTIVE when it provisions")));
        }
        // The certificate first: a device marked inactive must not still be able to connect.
        if let Some(certificate) = &current.certificate_id {
            deps.certificates.set_active(certificate, status == DeviceStatus::Active).await?;
        }
        let device = deps.devices.set_status(&thing, status, &format_utc(Utc::now())).await?;
        let device = device.ok_or_else(|| ApiError::NotFound(format!("no device {thing}")))?;
        tracing::info!(thing_name = %thing, status = status.as_str(), "device status changed");
        Ok((200, device_json(&device)))
    }
    .await)
}

/// `GET /admin/dead-letters?source=fhir-ingest&limit=&next=`: refused messages, newest first.
pub async fn list_dead_letters<D, L: DeadLetterStore, C>(request: Request, deps: &AdminDeps<D, L, C>) -> Response<Body> {
    respond(async {
        require(&request, &[Role::Admin])?;
        let source = query_param(&request, "source").unwrap_or_else(|| crate::ingest::SOURCE.to_owned());
        let limit = limit_param(&request, 25, 100)?;
        let page = deps.dead_letters.list(&source, limit, query_param(&request, "next").as_deref()).await?;
        Ok((200, json!({"deadLetters": page.items.iter().map(dead_letter_json).collect::<Vec<_>>(), "next": page.next})))
    }
    .await)
}

/// The admin routes' dependencies on AWS.
pub type AwsAdminDeps = AdminDeps<
    crate::devices::DynamoDeviceRegistry,
    crate::dead_letters::DynamoDeadLetterStore,
    crate::devices::IotCertificateControl,
>;

/// Builds the AWS-backed dependencies from the function's environment (once per cold start).
pub async fn aws_deps() -> Result<AwsAdminDeps, crate::tables::MissingSetting> {
    let config = crate::aws::load_config().await;
    let dynamodb = crate::aws::dynamodb(&config);
    Ok(AdminDeps {
        devices: crate::devices::DynamoDeviceRegistry::new(dynamodb.clone(), crate::tables::DEVICES.name_from_env()?),
        dead_letters: crate::dead_letters::DynamoDeadLetterStore::new(dynamodb, crate::tables::DEAD_LETTERS.name_from_env()?),
        certificates: crate::devices::IotCertificateControl { client: aws_sdk_iot::Client::new(&config) },
    })
}
