//! Connectors (issue 11, in progress): the home of IoMT mapping templates on AWS, as Azure's
//! MedTech service has them. A connector holds connections (whose primary and secondary keys
//! devices send data with) and a device and a FHIR mapping, and says how identities resolve and
//! where its Observations go. Routes in [`http`]; the design and its choices in
//! `docs/connectors.md`.
//!
//! Done so far: connectors themselves (create, update with `If-Match`, read, list, delete with
//! everything under them).

use std::future::Future;

pub mod connections;
pub mod consumer;
mod dynamodb;
pub mod errors;
pub mod http;
pub mod identity;
pub mod keys;
mod kms;
pub mod mappings;
pub mod messages;
pub mod mqtt;
pub mod queue;
#[cfg(any(test, feature = "memory"))]
pub mod memory;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use dynamodb::DynamoConnectorStore;
pub use kms::KmsKeyCipher;
pub use queue::SqsMessageQueue;

use crate::mapping::identity::IdentityMode;
use crate::StoreError;

/// How a connector ties measurements to devices and patients (the connector's
/// `ResourceIdentityServiceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdentityResolutionType {
    Lookup,
    Create,
    LookupWithEncounter,
}

impl IdentityResolutionType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lookup => "Lookup",
            Self::Create => "Create",
            Self::LookupWithEncounter => "LookupWithEncounter",
        }
    }

    pub fn named(name: &str) -> Option<Self> {
        [Self::Lookup, Self::Create, Self::LookupWithEncounter].into_iter().find(|t| t.as_str() == name)
    }

    /// The mapping engine's mode.
    pub fn mode(self) -> IdentityMode {
        match self {
            Self::Lookup => IdentityMode::Lookup,
            Self::Create => IdentityMode::Create,
            Self::LookupWithEncounter => IdentityMode::LookupWithEncounter,
        }
    }
}

/// Where a connector's Observations go. This platform's own FHIR store is the one destination
/// for now; others (an external FHIR server) would be added here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// This platform's Observations (DynamoDB), read through its FHIR routes.
    Platform,
}

impl Destination {
    pub const PLATFORM: &'static str = "vitalwire";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Platform => Self::PLATFORM,
        }
    }

    pub fn named(name: &str) -> Option<Self> {
        (name == Self::PLATFORM).then_some(Self::Platform)
    }
}

/// A connector's provisioning state, read-only. Writes are synchronous, so a connector that can
/// be read has `Succeeded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvisioningState {
    Succeeded,
}

impl ProvisioningState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "Succeeded",
        }
    }
}

/// A connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connector {
    pub name: String,
    pub identity_resolution_type: IdentityResolutionType,
    pub destination: Destination,
    pub enabled: bool,
    pub provisioning_state: ProvisioningState,
    pub created_at: String,
    pub updated_at: String,
    /// Counts writes from 1; the `etag` is made of it, and updates are conditional on it.
    pub version: u64,
}

impl Connector {
    /// A connector as first written (version 1), to the platform's store, enabled.
    pub fn created(name: &str, identity_resolution_type: IdentityResolutionType, at: &str) -> Self {
        Self {
            name: name.to_owned(),
            identity_resolution_type,
            destination: Destination::Platform,
            enabled: true,
            provisioning_state: ProvisioningState::Succeeded,
            created_at: at.to_owned(),
            updated_at: at.to_owned(),
            version: 1,
        }
    }

    /// The entity tag clients send back in `If-Match`.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "identityResolutionType": self.identity_resolution_type.as_str(),
            "destination": self.destination.as_str(),
            "enabled": self.enabled,
            "provisioningState": self.provisioning_state.as_str(),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "etag": self.etag(),
        })
    }
}

/// A connector (or connection) name: 3 to 64 of letters, digits and `-`, starting with a
/// letter or digit (it appears in URLs, MQTT topics and connection strings).
pub fn name_ok(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=64).contains(&b.len()) && b[0].is_ascii_alphanumeric() && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// What deleting a connector found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The connector and the given number of items under it (connections, mappings) are gone.
    Removed { with: usize },
    NotFound,
    /// Its version was not the expected one (an `If-Match` mismatch).
    Changed,
}

/// Where connectors (and, in the same partition, everything under them) are kept.
pub trait ConnectorStore: Send + Sync {
    fn list(&self) -> impl Future<Output = Result<Vec<Connector>, StoreError>> + Send;
    fn get(&self, name: &str) -> impl Future<Output = Result<Option<Connector>, StoreError>> + Send;
    /// Writes the connector if the stored one still has version `expected` (`None`: if there is
    /// none); false when that no longer holds.
    fn put(&self, connector: &Connector, expected: Option<u64>) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Deletes the connector, if its version is `expected` (`None`: any), with everything under it.
    fn delete(&self, name: &str, expected: Option<u64>) -> impl Future<Output = Result<Deleted, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_url_and_topic_safe() {
        for ok in ["abc", "hr-connector-1", "A1b", &"a".repeat(64)] {
            assert!(name_ok(ok), "{ok}");
        }
        for bad in ["ab", "-abc", "a b", "a/b", "a+b", "a#b", "ünï", &"a".repeat(65), ""] {
            assert!(!name_ok(bad), "{bad}");
        }
    }

    #[test]
    fn the_json_has_the_read_only_properties_and_the_etag() {
        let c = Connector {
            name: "hr".into(),
            identity_resolution_type: IdentityResolutionType::Create,
            destination: Destination::Platform,
            enabled: true,
            provisioning_state: ProvisioningState::Succeeded,
            created_at: "2026-12-01T10:00:00.000Z".into(),
            updated_at: "2026-12-01T10:00:00.000Z".into(),
            version: 3,
        };
        let j = c.to_json();
        assert_eq!((j["etag"].as_str(), j["provisioningState"].as_str(), j["destination"].as_str()), (Some("\"3\""), Some("Succeeded"), Some("vitalwire")));
        assert_eq!(IdentityResolutionType::named("LookupWithEncounter").map(IdentityResolutionType::mode), Some(IdentityMode::LookupWithEncounter));
        assert_eq!(IdentityResolutionType::named("lookup"), None, "the names are exact, as MedTech's ARM API has them");
    }
}
