//! Patients the platform keeps records of. Most patients are only an id an operator assigns to
//! a device; a connector in `Create` mode makes a patient record from the patient identifier
//! its messages carry (the IoMT connector creates a FHIR Patient), so that the next message
//! finds the same patient, and two workers creating it at once converge on one record.

mod dynamodb;
#[cfg(test)]
pub(crate) mod memory;

use std::future::Future;

pub use dynamodb::DynamoPatientStore;

use crate::StoreError;

/// A patient record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patient {
    /// The FHIR Patient id: for a created patient, derived from its identifier.
    pub id: String,
    /// The identifier value it was created from (a medical record number, say).
    pub identifier: String,
    /// What created it, e.g. `connector/ward-7`.
    pub created_by: String,
    pub created_at: String,
}

/// The patient store port.
pub trait PatientStore: Send + Sync {
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Patient>, StoreError>> + Send;
    /// Creates the patient unless its id is taken; false when it is (the existing one stays).
    fn create(&self, patient: &Patient) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
