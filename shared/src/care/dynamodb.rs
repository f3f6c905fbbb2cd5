//! Care teams in the `CareTeamsTable`: one partition per clinician, location and patient
//! (`pk` = `clinician#<id>`, `location#<id>`, `patient#<id>`), each record a JSON document
//! (`doc`) under its `sk` (`profile`, `team`, `settings`), and a location's members as
//! `member#<clinicianId>` items in its partition, so a location and its members are one query.
//! A team is indexed the other way round too: `patient#<patientId>` items (with `patientId`) in
//! the partition of each clinician it names and of its location, so a clinician's worklist finds
//! their patients by key.

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{CareStore, CareTeam, ClinicalSettings, Clinician, Location};
use crate::platform::dynamodb::{put, query_all, req_s, s, Item};
use crate::platform::tables::{CARE_TEAMS, CARE_TEAMS_BY_KIND};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

#[derive(Debug, Clone)]
pub struct DynamoCareStore {
    client: Client,
    table: String,
}

impl DynamoCareStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    fn item<T: Serialize>(pk: String, sk: &str, kind: Option<&str>, doc: &T, op: &'static str) -> Result<Item, StoreError> {
        let mut item = Item::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk)), ("doc".to_owned(), s(serde_json::to_string(doc).map_err(|e| StoreError::new(op, e))?))]);
        if let Some(kind) = kind {
            item.insert("kind".to_owned(), s(kind));
        }
        Ok(item)
    }

    async fn doc<T: DeserializeOwned>(&self, pk: String, sk: &str, op: &'static str) -> Result<Option<T>, StoreError> {
        let out = self.client.get_item().table_name(&self.table).key("pk", s(pk)).key("sk", s(sk)).send().await.map_err(|e| StoreError::sdk(op, &e))?;
        out.item.as_ref().map(|item| from_doc(item, op)).transpose()
    }

    async fn patients_in(&self, pk: String, op: &'static str) -> Result<Vec<String>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :patient)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":patient", s("patient#"));
        query_all(query, op, |item| req_s(item, "patientId", op)).await
    }

    async fn of_kind<T: DeserializeOwned>(&self, kind: &str, op: &'static str) -> Result<Vec<T>, StoreError> {
        let query = self.client.query().table_name(&self.table).index_name(CARE_TEAMS_BY_KIND.name).key_condition_expression("kind = :k").expression_attribute_values(":k", s(kind));
        query_all(query, op, |item| from_doc(item, op)).await
    }
}

fn from_doc<T: DeserializeOwned>(item: &Item, op: &'static str) -> Result<T, StoreError> {
    serde_json::from_str(&req_s(item, "doc", op)?).map_err(|e| StoreError::new(op, e))
}

impl FromWiring for DynamoCareStore {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.dynamodb(), w.table(&CARE_TEAMS)?))
    }
}

impl CareStore for DynamoCareStore {
    async fn clinician(&self, clinician_id: &str) -> Result<Option<Clinician>, StoreError> {
        self.doc(format!("clinician#{clinician_id}"), "profile", "read clinician").await
    }

    async fn put_clinician(&self, clinician: &Clinician, previous: Option<&Clinician>) -> Result<(), StoreError> {
        const OP: &str = "write clinician";
        let id = &clinician.clinician_id;
        let profile = Put::builder().table_name(&self.table).set_item(Some(Self::item(format!("clinician#{id}"), "profile", Some("clinician"), clinician, OP)?)).build().map_err(|e| StoreError::new(OP, e))?;
        let mut items = vec![TransactWriteItem::builder().put(profile).build()];
        for location in &clinician.location_ids {
            let member = Item::from([("pk".to_owned(), s(format!("location#{location}"))), ("sk".to_owned(), s(format!("member#{id}"))), ("clinicianId".to_owned(), s(id))]);
            items.push(TransactWriteItem::builder().put(Put::builder().table_name(&self.table).set_item(Some(member)).build().map_err(|e| StoreError::new(OP, e))?).build());
        }
        for left in previous.iter().flat_map(|p| &p.location_ids).filter(|l| !clinician.location_ids.contains(l)) {
            let delete = Delete::builder().table_name(&self.table).key("pk", s(format!("location#{left}"))).key("sk", s(format!("member#{id}"))).build().map_err(|e| StoreError::new(OP, e))?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        self.client.transact_write_items().set_transact_items(Some(items)).send().await.map_err(|e| StoreError::sdk(OP, &e))?;
        Ok(())
    }

    async fn clinicians(&self) -> Result<Vec<Clinician>, StoreError> {
        self.of_kind("clinician", "list clinicians").await
    }

    async fn location(&self, location_id: &str) -> Result<Option<Location>, StoreError> {
        self.doc(format!("location#{location_id}"), "profile", "read location").await
    }

    async fn put_location(&self, location: &Location) -> Result<(), StoreError> {
        const OP: &str = "write location";
        put(&self.client, &self.table, Self::item(format!("location#{}", location.location_id), "profile", Some("location"), location, OP)?, OP).await
    }

    async fn locations(&self) -> Result<Vec<Location>, StoreError> {
        self.of_kind("location", "list locations").await
    }

    async fn members(&self, location_id: &str) -> Result<Vec<String>, StoreError> {
        const OP: &str = "list location members";
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :member)")
            .expression_attribute_values(":pk", s(format!("location#{location_id}")))
            .expression_attribute_values(":member", s("member#"));
        query_all(query, OP, |item| req_s(item, "clinicianId", OP)).await
    }

    async fn care_team(&self, patient_id: &str) -> Result<Option<CareTeam>, StoreError> {
        self.doc(format!("patient#{patient_id}"), "team", "read care team").await
    }

    async fn put_care_team(&self, team: &CareTeam) -> Result<(), StoreError> {
        const OP: &str = "write care team";
        let pk = format!("patient#{}", team.patient_id);
        let read = self.client.get_item().table_name(&self.table).key("pk", s(&pk)).key("sk", s("team")).consistent_read(true).send().await.map_err(|e| StoreError::sdk(OP, &e))?;
        let previous_doc = read.item().and_then(|i| crate::platform::dynamodb::opt_s(i, "doc"));
        let previous: CareTeam = match &previous_doc {
            Some(doc) => serde_json::from_str(doc).map_err(|e| StoreError::new(OP, e))?,
            None => CareTeam::default(),
        };
        let partitions = |t: &CareTeam| -> Vec<String> { t.members().map(|c| format!("clinician#{c}")).chain(t.location_id.iter().map(|l| format!("location#{l}"))).collect() };
        let (now, before) = (partitions(team), partitions(&previous));
        // Written over the team it was read as: two changes at once do not leave stale entries.
        let mut put_team = Put::builder().table_name(&self.table).set_item(Some(Self::item(pk, "team", None, team, OP)?));
        put_team = match previous_doc {
            Some(doc) => put_team.condition_expression("doc = :previous").expression_attribute_values(":previous", s(doc)),
            None => put_team.condition_expression("attribute_not_exists(pk)"),
        };
        let mut items = vec![TransactWriteItem::builder().put(put_team.build().map_err(|e| StoreError::new(OP, e))?).build()];
        let sk = format!("patient#{}", team.patient_id);
        for partition in now.iter().filter(|p| !before.contains(p)) {
            let entry = Item::from([("pk".to_owned(), s(partition)), ("sk".to_owned(), s(&sk)), ("patientId".to_owned(), s(&team.patient_id))]);
            items.push(TransactWriteItem::builder().put(Put::builder().table_name(&self.table).set_item(Some(entry)).build().map_err(|e| StoreError::new(OP, e))?).build());
        }
        for partition in before.iter().filter(|p| !now.contains(p)) {
            let delete = Delete::builder().table_name(&self.table).key("pk", s(partition)).key("sk", s(&sk)).build().map_err(|e| StoreError::new(OP, e))?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        self.client.transact_write_items().set_transact_items(Some(items)).send().await.map_err(|e| StoreError::sdk(OP, &e))?;
        Ok(())
    }

    async fn patients_of(&self, clinician_id: &str) -> Result<Vec<String>, StoreError> {
        self.patients_in(format!("clinician#{clinician_id}"), "list a clinician's patients").await
    }

    async fn patients_at(&self, location_id: &str) -> Result<Vec<String>, StoreError> {
        self.patients_in(format!("location#{location_id}"), "list a location's patients").await
    }

    async fn settings(&self, patient_id: &str) -> Result<Option<ClinicalSettings>, StoreError> {
        self.doc(format!("patient#{patient_id}"), "settings", "read clinical settings").await
    }

    async fn put_settings(&self, settings: &ClinicalSettings) -> Result<(), StoreError> {
        const OP: &str = "write clinical settings";
        put(&self.client, &self.table, Self::item(format!("patient#{}", settings.patient_id), "settings", None, settings, OP)?, OP).await
    }
}
