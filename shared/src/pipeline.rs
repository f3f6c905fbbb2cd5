//! The one way readings are filed, whichever way they came (the `FHIRIngest` rule, the vitals
//! REST API, the S3 inbox): Observations built by `observations`/`readings`, stored with a
//! conditional write keyed by (device, time, code), so a redelivered reading is a no-op and a
//! different reading under the same key is a conflict, never an overwrite.

use crate::fhir::Observation;
use crate::observations::{Inserted, ObservationStore, StoredObservation};
use crate::StoreError;

/// What filing one Observation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filed {
    Stored { id: String },
    /// The same Observation was filed before (a redelivery).
    Duplicate { id: String },
    /// Another Observation with different content holds this key.
    Conflict { id: String },
}

impl Filed {
    pub fn id(&self) -> &str {
        match self {
            Filed::Stored { id } | Filed::Duplicate { id } | Filed::Conflict { id } => id,
        }
    }
}

/// Files one Observation whose primary code is `code_key`, effective at `effective_utc`.
pub async fn file<O: ObservationStore>(
    store: &O,
    observation: &Observation,
    code_key: String,
    effective_utc: String,
) -> Result<Filed, StoreError> {
    let stored = StoredObservation::new(observation, code_key, effective_utc)
        .map_err(|e| StoreError::new("serialize observation", e))?;
    Ok(match store.insert(&stored).await? {
        Inserted::New => Filed::Stored { id: stored.id },
        Inserted::AlreadyExists { content_hash } if content_hash == stored.content_hash => Filed::Duplicate { id: stored.id },
        Inserted::AlreadyExists { .. } => Filed::Conflict { id: stored.id },
    })
}
