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
    tracing::info!(thing_name = %thing, status = status.as_str(), "device status changed");
    Ok((200, device_json(&device)))
}
