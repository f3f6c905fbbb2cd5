use aws_sdk_dynamodb::Client;

use super::{Encounter, EncounterStatus, EncounterStore, Patient, PatientStore};
use crate::platform::dynamodb::{conditional_put, req_s, s, Item};
use crate::platform::tables::{ENCOUNTERS, PATIENTS};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// Patient records in the `PatientsTable`.
#[derive(Debug, Clone)]
pub struct DynamoPatientStore {
    client: Client,
    table: String,
}

impl DynamoPatientStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

impl FromWiring for DynamoPatientStore {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.dynamodb(), w.table(&PATIENTS)?))
    }
}

fn from_item(item: &Item) -> Result<Patient, StoreError> {
    const OP: &str = "read patient";
    Ok(Patient {
        id: req_s(item, "patientId", OP)?,
        identifier: req_s(item, "identifier", OP)?,
        created_by: req_s(item, "createdBy", OP)?,
        created_at: req_s(item, "createdAt", OP)?,
    })
}

impl PatientStore for DynamoPatientStore {
    async fn get(&self, id: &str) -> Result<Option<Patient>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("patientId", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("get patient", &e))?;
        out.item.as_ref().map(from_item).transpose()
    }

    async fn create(&self, patient: &Patient) -> Result<bool, StoreError> {
        let item: Item = [
            ("patientId", &patient.id),
            ("identifier", &patient.identifier),
            ("createdBy", &patient.created_by),
            ("createdAt", &patient.created_at),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), s(v.as_str())))
        .collect();
        let put = self.client.put_item().table_name(&self.table).set_item(Some(item)).condition_expression("attribute_not_exists(patientId)");
        conditional_put(put, "create patient").await
    }
}

/// Encounter records in the `EncountersTable`.
#[derive(Debug, Clone)]
pub struct DynamoEncounterStore {
    client: Client,
    table: String,
}

impl DynamoEncounterStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

impl FromWiring for DynamoEncounterStore {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.dynamodb(), w.table(&ENCOUNTERS)?))
    }
}

fn encounter_from(item: &Item) -> Result<Encounter, StoreError> {
    const OP: &str = "read encounter";
    let status = req_s(item, "status", OP)?;
    Ok(Encounter {
        id: req_s(item, "encounterId", OP)?,
        identifier: req_s(item, "identifier", OP)?,
        patient_id: req_s(item, "patientId", OP)?,
        status: EncounterStatus::named(&status).ok_or_else(|| StoreError::new(OP, format!("unknown status {status:?}")))?,
        created_at: req_s(item, "createdAt", OP)?,
    })
}

impl EncounterStore for DynamoEncounterStore {
    async fn get(&self, id: &str) -> Result<Option<Encounter>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("encounterId", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("get encounter", &e))?;
        out.item.as_ref().map(encounter_from).transpose()
    }

    async fn create(&self, e: &Encounter) -> Result<bool, StoreError> {
        let item: Item = [
            ("encounterId", e.id.as_str()),
            ("identifier", &e.identifier),
            ("patientId", &e.patient_id),
            ("status", e.status.as_str()),
            ("createdAt", &e.created_at),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), s(v)))
        .collect();
        let put = self.client.put_item().table_name(&self.table).set_item(Some(item)).condition_expression("attribute_not_exists(encounterId)");
        conditional_put(put, "create encounter").await
    }
}
