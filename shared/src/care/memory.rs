//! Care teams in memory, for unit tests: the same records and memberships as the table.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{CareStore, CareTeam, ClinicalSettings, Clinician, Location};
use crate::StoreError;

#[derive(Debug, Default)]
pub struct MemoryCare {
    pub clinicians: Mutex<BTreeMap<String, Clinician>>,
    pub locations: Mutex<BTreeMap<String, Location>>,
    pub teams: Mutex<BTreeMap<String, CareTeam>>,
    pub settings: Mutex<BTreeMap<String, ClinicalSettings>>,
}

impl MemoryCare {
    /// Nurse `clinician` in the care team of each of `patients` (for tests of reads).
    pub fn looking_after(clinician: &str, patients: &[&str]) -> Self {
        let care = Self::default();
        let nurse = Clinician { clinician_id: clinician.into(), name: clinician.into(), role: super::ClinicianRole::Nurse, email: None, phone: None, location_ids: Vec::new() };
        care.clinicians.lock().expect("lock").insert(clinician.into(), nurse);
        for p in patients {
            let team = CareTeam { patient_id: (*p).into(), nurses: vec![clinician.into()], ..CareTeam::default() };
            care.teams.lock().expect("lock").insert((*p).into(), team);
        }
        care
    }
}

impl CareStore for MemoryCare {
    async fn clinician(&self, clinician_id: &str) -> Result<Option<Clinician>, StoreError> {
        Ok(self.clinicians.lock().expect("lock").get(clinician_id).cloned())
    }

    async fn put_clinician(&self, clinician: &Clinician, _previous: Option<&Clinician>) -> Result<(), StoreError> {
        self.clinicians.lock().expect("lock").insert(clinician.clinician_id.clone(), clinician.clone());
        Ok(())
    }

    async fn clinicians(&self) -> Result<Vec<Clinician>, StoreError> {
        Ok(self.clinicians.lock().expect("lock").values().cloned().collect())
    }

    async fn location(&self, location_id: &str) -> Result<Option<Location>, StoreError> {
        Ok(self.locations.lock().expect("lock").get(location_id).cloned())
    }

    async fn put_location(&self, location: &Location) -> Result<(), StoreError> {
        self.locations.lock().expect("lock").insert(location.location_id.clone(), location.clone());
        Ok(())
    }

    async fn locations(&self) -> Result<Vec<Location>, StoreError> {
        Ok(self.locations.lock().expect("lock").values().cloned().collect())
    }

    async fn members(&self, location_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.clinicians.lock().expect("lock").values().filter(|c| c.location_ids.iter().any(|l| l == location_id)).map(|c| c.clinician_id.clone()).collect())
    }

    async fn care_team(&self, patient_id: &str) -> Result<Option<CareTeam>, StoreError> {
        Ok(self.teams.lock().expect("lock").get(patient_id).cloned())
    }

    async fn put_care_team(&self, team: &CareTeam) -> Result<(), StoreError> {
        self.teams.lock().expect("lock").insert(team.patient_id.clone(), team.clone());
        Ok(())
    }

    async fn patients_of(&self, clinician_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.teams.lock().expect("lock").values().filter(|t| t.members().any(|m| m == clinician_id)).map(|t| t.patient_id.clone()).collect())
    }

    async fn patients_at(&self, location_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.teams.lock().expect("lock").values().filter(|t| t.location_id.as_deref() == Some(location_id)).map(|t| t.patient_id.clone()).collect())
    }

    async fn settings(&self, patient_id: &str) -> Result<Option<ClinicalSettings>, StoreError> {
        Ok(self.settings.lock().expect("lock").get(patient_id).cloned())
    }

    async fn put_settings(&self, settings: &ClinicalSettings) -> Result<(), StoreError> {
        self.settings.lock().expect("lock").insert(settings.patient_id.clone(), settings.clone());
        Ok(())
    }
}
