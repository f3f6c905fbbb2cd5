use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::{provisionable, CertificateBinding, Device, DeviceRegistry, DeviceStatus, InstalledFirmware};
use crate::platform::dynamodb::{is_condition_failed, opt_bool, opt_s, conditional_put, put_opt, req_s, s, Item};
use crate::platform::tables::{DEVICES, DEVICES_BY_SERIAL_NUMBER};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// The device registry in the `DevicesTable`.
#[derive(Debug, Clone)]
pub struct DynamoDeviceRegistry {
    client: Client,
    table: String,
}

impl FromWiring for DynamoDeviceRegistry {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.dynamodb(), w.table(&DEVICES)?))
    }
}

impl DynamoDeviceRegistry {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// Runs an update on an existing device and returns it as it is now.
    async fn update(
        &self,
        operation: &'static str,
        request: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> Result<Option<Device>, StoreError> {
        let out = request
            .condition_expression("attribute_exists(thingName)")
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(out) => out.attributes.as_ref().map(from_item).transpose(),
            Err(e) if is_condition_failed(&e) => Ok(None),
            Err(e) => Err(StoreError::sdk(operation, &e)),
        }
    }

    /// Runs a conditional update: the updated device, or when the condition failed the device
    /// as it is (`None` if it does not exist).
    async fn update_or_as_is(
        &self,
        thing_name: &str,
        operation: &'static str,
        request: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> Result<Option<Device>, StoreError> {
        match request.return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew).send().await {
            Ok(out) => out.attributes.as_ref().map(from_item).transpose(),
            Err(e) if is_condition_failed(&e) => self.get(thing_name).await,
            Err(e) => Err(StoreError::sdk(operation, &e)),
        }
    }
}

fn to_item(d: &Device) -> Item {
    let mut item = Item::new();
    item.insert("thingName".into(), s(&d.thing_name));
    item.insert("serialNumber".into(), s(&d.serial_number));
    item.insert("manufacturer".into(), s(&d.manufacturer));
    item.insert("serialKey".into(), s(Device::serial_key(&d.manufacturer, &d.serial_number)));
    item.insert("model".into(), s(&d.model));
    item.insert("displayName".into(), s(&d.display_name));
    put_opt(&mut item, "patientId", d.patient_id.as_deref());
    item.insert("mayNamePatient".into(), AttributeValue::Bool(d.may_name_patient));
    item.insert("status".into(), s(d.status.as_str()));
    put_opt(&mut item, "certificateId", d.certificate_id.as_deref());
    put_opt(&mut item, "certificateBoundAt", d.certificate_bound_at.as_deref());
    if let Some(f) = &d.firmware {
        item.insert("firmware".into(), firmware_value(f));
    }
    item.insert("createdAt".into(), s(&d.created_at));
    item.insert("updatedAt".into(), s(&d.updated_at));
    item
}

fn firmware_value(f: &InstalledFirmware) -> AttributeValue {
    AttributeValue::M(Item::from([
        ("firmwareId".into(), s(&f.firmware_id)),
        ("version".into(), s(&f.version)),
        ("deploymentId".into(), s(&f.deployment_id)),
        ("installedAt".into(), s(&f.installed_at)),
    ]))
}

fn from_item(item: &Item) -> Result<Device, StoreError> {
    const OP: &str = "read device";
    let status = req_s(item, "status", OP)?;
    Ok(Device {
        thing_name: req_s(item, "thingName", OP)?,
        serial_number: req_s(item, "serialNumber", OP)?,
        manufacturer: req_s(item, "manufacturer", OP)?,
        model: opt_s(item, "model").unwrap_or_default(),
        display_name: opt_s(item, "displayName").unwrap_or_default(),
        patient_id: opt_s(item, "patientId"),
        may_name_patient: opt_bool(item, "mayNamePatient").unwrap_or(false),
        status: DeviceStatus::parse(&status)
            .ok_or_else(|| StoreError::new(OP, format!("unknown device status `{status}`")))?,
        certificate_id: opt_s(item, "certificateId"),
        certificate_bound_at: opt_s(item, "certificateBoundAt"),
        firmware: item.get("firmware").and_then(|v| v.as_m().ok()).and_then(|m| {
            Some(InstalledFirmware {
                firmware_id: opt_s(m, "firmwareId")?,
                version: opt_s(m, "version")?,
                deployment_id: opt_s(m, "deploymentId").unwrap_or_default(),
                installed_at: opt_s(m, "installedAt").unwrap_or_default(),
            })
        }),
        created_at: opt_s(item, "createdAt").unwrap_or_default(),
        updated_at: opt_s(item, "updatedAt").unwrap_or_default(),
    })
}

impl DeviceRegistry for DynamoDeviceRegistry {
    async fn get(&self, thing_name: &str) -> Result<Option<Device>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("thingName", s(thing_name))
            .send()
            .await
            .map_err(|e| StoreError::sdk("get device", &e))?;
        out.item.as_ref().map(from_item).transpose()
    }

    async fn put(&self, device: &Device) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(device)))
            .send()
            .await
            .map_err(|e| StoreError::sdk("put device", &e))?;
        Ok(())
    }

    async fn create(&self, device: &Device) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(device)))
            .condition_expression("attribute_not_exists(thingName)");
        conditional_put(put, "create device").await
    }

    async fn list(&self, limit: i32, after: Option<&str>) -> Result<(Vec<Device>, Option<String>), StoreError> {
        // A scan pages in key-hash order; the cursor is the last thing name returned.
        let mut request = self.client.scan().table_name(&self.table).limit(limit);
        if let Some(after) = after {
            request = request.exclusive_start_key("thingName", s(after));
        }
        let out = request.send().await.map_err(|e| StoreError::sdk("list devices", &e))?;
        let devices = out.items().iter().map(from_item).collect::<Result<Vec<_>, _>>()?;
        let next = out.last_evaluated_key().and_then(|k| k.get("thingName")).and_then(|v| v.as_s().ok()).cloned();
        Ok((devices, next))
    }

    async fn set_patient(&self, thing_name: &str, patient_id: Option<&str>, at: &str) -> Result<Option<Device>, StoreError> {
        let request = self.client.update_item().table_name(&self.table).key("thingName", s(thing_name));
        let request = match patient_id {
            Some(p) => request
                .update_expression("SET patientId = :p, updatedAt = :at")
                .expression_attribute_values(":p", s(p)),
            None => request.update_expression("REMOVE patientId SET updatedAt = :at"),
        };
        self.update("set patient", request.expression_attribute_values(":at", s(at))).await
    }

    async fn activate_registered(&self, thing_name: &str, at: &str) -> Result<Option<Device>, StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("thingName", s(thing_name))
            .update_expression("SET #status = :active, updatedAt = :at")
            .condition_expression("#status = :registered")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":active", s(DeviceStatus::Active.as_str()))
            .expression_attribute_values(":registered", s(DeviceStatus::Registered.as_str()))
            .expression_attribute_values(":at", s(at));
        // Not REGISTERED (or gone): as it is.
        self.update_or_as_is(thing_name, "activate device", request).await
    }

    async fn set_status(&self, thing_name: &str, status: DeviceStatus, at: &str) -> Result<Option<Device>, StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("thingName", s(thing_name))
            .update_expression("SET #status = :s, updatedAt = :at")
            .condition_expression("attribute_exists(thingName) AND (#status <> :blocked OR :s = :blocked)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":s", s(status.as_str()))
            .expression_attribute_values(":blocked", s(DeviceStatus::Blocked.as_str()))
            .expression_attribute_values(":at", s(at));
        // Absent, or blocked meanwhile: as it is.
        self.update_or_as_is(thing_name, "set status", request).await
    }

    async fn find_by_serial(&self, manufacturer: &str, serial_number: &str) -> Result<Option<Device>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DEVICES_BY_SERIAL_NUMBER.name)
            .key_condition_expression("serialKey = :k")
            .expression_attribute_values(":k", s(Device::serial_key(manufacturer, serial_number)))
            .limit(2)
            .send()
            .await
            .map_err(|e| StoreError::sdk("find device by serial number", &e))?;
        match out.items() {
            [] => Ok(None),
            [item] => from_item(item).map(Some),
            _ => Err(StoreError::new("find device by serial number", "two devices share a serial number")),
        }
    }

    async fn bind_certificate(
        &self,
        thing_name: &str,
        certificate_id: &str,
        replacing: Option<&str>,
        at: &str,
    ) -> Result<CertificateBinding, StoreError> {
        // A certificate bound again (a retried RegisterThing) keeps its first binding time; a
        // replacing one starts its own.
        let bound_at = if replacing.is_some() { ":at" } else { "if_not_exists(certificateBoundAt, :at)" };
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("thingName", s(thing_name))
            .update_expression(format!("SET #status = :active, updatedAt = :at, certificateBoundAt = {bound_at}, certificateId = :cert"))
            .condition_expression(
                "attribute_exists(thingName) AND (attribute_not_exists(certificateId) OR certificateId IN (:cert, :replacing)) \
                 AND #status IN (:registered, :active)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":cert", s(certificate_id))
            // Without a certificate to replace, only the new one itself matches.
            .expression_attribute_values(":replacing", s(replacing.unwrap_or(certificate_id)))
            .expression_attribute_values(":active", s(DeviceStatus::Active.as_str()))
            .expression_attribute_values(":registered", s(DeviceStatus::Registered.as_str()))
            .expression_attribute_values(":at", s(at))
            .send()
            .await;
        match update {
            Ok(_) => Ok(CertificateBinding::Bound),
            Err(e) if is_condition_failed(&e) => {
                // Explain the refusal from the record as it is now.
                Ok(match self.get(thing_name).await? {
                    None => CertificateBinding::Missing,
                    Some(d) if !provisionable(d.status) => CertificateBinding::NotProvisionable(d.status),
                    Some(d) => CertificateBinding::TakenBy(d.certificate_id.unwrap_or_default()),
                })
            }
            Err(e) => Err(StoreError::sdk("bind certificate", &e)),
        }
    }

    async fn set_firmware(&self, thing_name: &str, firmware: &InstalledFirmware) -> Result<bool, StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("thingName", s(thing_name))
            .update_expression("SET firmware = :f, updatedAt = :at")
            .expression_attribute_values(":f", firmware_value(firmware))
            .expression_attribute_values(":at", s(&firmware.installed_at));
        Ok(self.update("set firmware", request).await?.is_some())
    }
}
