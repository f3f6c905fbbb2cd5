//! What can go wrong with a connector message, where, and how much of it it stops: the one
//! table behind the dead letters the consumer and the front door keep, the errors route
//! (`GET /connectors/{c}/errors`) and the error metrics.

use crate::mapping::convert::ConversionError;
use crate::mapping::identity::IdentityError;

/// The stage of the data plane a message failed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The front door: the request or the envelope.
    Receive,
    /// The device mapping.
    Normalization,
    /// The FHIR mapping.
    FhirConversion,
    /// Finding (or creating) the device and patient.
    IdentityResolution,
    /// Filing the Observations.
    Storage,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receive => "receive",
            Self::Normalization => "normalization",
            Self::FhirConversion => "fhirConversion",
            Self::IdentityResolution => "identityResolution",
            Self::Storage => "storage",
        }
    }
}

/// How much of a message an error stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocks {
    /// The whole message: nothing of it was filed.
    Message,
    /// One group of its measurements (one device and type); the message's other groups were filed.
    Measurements,
}

impl Blocks {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Measurements => "measurements",
        }
    }
}

/// Every error type, with its stage and what it blocks.
pub const ERROR_TYPES: &[(&str, Stage, Blocks)] = &[
    ("BODY_TOO_LARGE", Stage::Receive, Blocks::Message),
    ("NOT_JSON", Stage::Receive, Blocks::Message),
    ("NO_MESSAGES", Stage::Receive, Blocks::Message),
    ("BAD_DEVICE_ID", Stage::Receive, Blocks::Message),
    ("NOT_AN_ENVELOPE", Stage::Receive, Blocks::Message),
    ("CONNECTOR_DELETED", Stage::Receive, Blocks::Message),
    ("CONNECTOR_NOT_FOUND", Stage::Receive, Blocks::Message),
    ("CONNECTOR_DISABLED", Stage::Receive, Blocks::Message),
    ("NOT_THIS_DEVICE", Stage::Receive, Blocks::Message),
    ("NO_DEVICE_MAPPING", Stage::Normalization, Blocks::Message),
    ("NORMALIZATION_FAILED", Stage::Normalization, Blocks::Message),
    ("NO_MEASUREMENT", Stage::Normalization, Blocks::Message),
    ("NO_FHIR_MAPPING", Stage::FhirConversion, Blocks::Message),
    ("TEMPLATE_NOT_FOUND", Stage::FhirConversion, Blocks::Measurements),
    ("CONVERSION_FAILED", Stage::FhirConversion, Blocks::Measurements),
    ("DEVICE_NOT_FOUND", Stage::IdentityResolution, Blocks::Measurements),
    ("PATIENT_NOT_FOUND", Stage::IdentityResolution, Blocks::Measurements),
    ("ENCOUNTER_NOT_FOUND", Stage::IdentityResolution, Blocks::Measurements),
    ("PATIENT_ID_NOT_DEFINED", Stage::IdentityResolution, Blocks::Measurements),
    ("ENCOUNTER_ID_NOT_DEFINED", Stage::IdentityResolution, Blocks::Measurements),
    ("PATIENT_DEVICE_MISMATCH", Stage::IdentityResolution, Blocks::Measurements),
    ("DEVICE_NOT_ACTIVE", Stage::IdentityResolution, Blocks::Measurements),
    ("FOREIGN_DEVICE", Stage::IdentityResolution, Blocks::Measurements),
    ("NOT_STORABLE", Stage::Storage, Blocks::Measurements),
    ("VALUE_REPLACED", Stage::Storage, Blocks::Measurements),
];

/// The stage and scope of an error type (an unknown one: the whole message at receive).
pub fn classify(error_type: &str) -> (Stage, Blocks) {
    ERROR_TYPES.iter().find(|(t, _, _)| *t == error_type).map_or((Stage::Receive, Blocks::Message), |(_, s, b)| (*s, *b))
}

/// The error type of a group that could not be converted (not a transient one).
pub fn conversion_error_type(e: &ConversionError) -> &'static str {
    match e {
        ConversionError::TemplateNotFound(_) => "TEMPLATE_NOT_FOUND",
        ConversionError::Identity(i) => match i {
            IdentityError::DeviceNotFound(_) => "DEVICE_NOT_FOUND",
            IdentityError::PatientNotFound(_) => "PATIENT_NOT_FOUND",
            IdentityError::EncounterNotFound(_) => "ENCOUNTER_NOT_FOUND",
            IdentityError::PatientIdNotDefined => "PATIENT_ID_NOT_DEFINED",
            IdentityError::EncounterIdNotDefined => "ENCOUNTER_ID_NOT_DEFINED",
            IdentityError::PatientDeviceMismatch { .. } => "PATIENT_DEVICE_MISMATCH",
            IdentityError::Registry(_) => "CONVERSION_FAILED",
        },
        ConversionError::Grouping(_) | ConversionError::Observation(_) | ConversionError::Store(_) => "CONVERSION_FAILED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_listed_once_and_unknown_ones_stop_the_message() {
        let mut names: Vec<&str> = ERROR_TYPES.iter().map(|(t, _, _)| *t).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ERROR_TYPES.len());
        assert_eq!(classify("DEVICE_NOT_FOUND"), (Stage::IdentityResolution, Blocks::Measurements));
        assert_eq!(classify("NO_MEASUREMENT"), (Stage::Normalization, Blocks::Message));
        assert_eq!(classify("SOMETHING_NEW"), (Stage::Receive, Blocks::Message));
        let e = ConversionError::Identity(IdentityError::PatientIdNotDefined);
        assert_eq!(classify(conversion_error_type(&e)).0, Stage::IdentityResolution);
    }
}
