//! A connector's mappings: its device mapping (a `CollectionContent`) and its FHIR mapping (a
//! `CollectionFhir`), the IoMT connector's template files, kept as written and versioned: each
//! accepted write is a new version, and the earlier ones stay readable.

use std::future::Future;

use super::connections::Written;
use crate::mapping::content::DeviceMapping;
use crate::mapping::fhir_templates::FhirMapping;
use crate::mapping::templates::TemplateError;
use crate::StoreError;

/// Largest mapping file kept (a DynamoDB item holds 400 KB; MedTech's own limit was lower).
pub const MAX_MAPPING_BYTES: usize = 256 * 1024;

/// Which of a connector's two mappings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappingKind {
    Device,
    Fhir,
}

impl MappingKind {
    pub const ALL: [Self; 2] = [Self::Device, Self::Fhir];

    /// As the route's path segment names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Device => "device",
            Self::Fhir => "fhir",
        }
    }

    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Every problem of a mapping file of this kind, each with line and column; none when it
    /// loads.
    pub fn problems(self, text: &str) -> Vec<TemplateError> {
        let loaded = match self {
            Self::Device => DeviceMapping::parse(text).map(|_| ()),
            Self::Fhir => FhirMapping::parse(text).map(|_| ()),
        };
        loaded.err().unwrap_or_default()
    }
}

/// One version of a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMapping {
    pub connector: String,
    pub kind: MappingKind,
    /// From 1.
    pub version: u64,
    /// The file as written (without a byte-order mark).
    pub text: String,
    pub updated_at: String,
}

impl StoredMapping {
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }
}

/// Where mappings are kept (beside their connector).
pub trait MappingStore: Send + Sync {
    /// A version of a mapping, or the latest.
    fn mapping(&self, connector: &str, kind: MappingKind, version: Option<u64>) -> impl Future<Output = Result<Option<StoredMapping>, StoreError>> + Send;
    /// Adds a version if its connector exists and the version is not taken (`Changed`: another
    /// write took it first).
    fn put_mapping(&self, mapping: &StoredMapping) -> impl Future<Output = Result<Written, StoreError>> + Send;
    /// Removes a mapping with all its versions; how many there were.
    fn delete_mapping(&self, connector: &str, kind: MappingKind) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_validate_their_own_files() {
        let device = r#"{"templateType": "CollectionContent", "template": []}"#;
        let fhir = r#"{"templateType": "CollectionFhir", "template": []}"#;
        assert!(MappingKind::Device.problems(device).is_empty());
        assert!(MappingKind::Fhir.problems(fhir).is_empty());
        let wrong = MappingKind::Device.problems(fhir);
        assert_eq!(wrong.len(), 1);
        assert_eq!(wrong[0].position.map(|p| p.line), Some(1));
        assert_eq!(MappingKind::named("fhir"), Some(MappingKind::Fhir));
        assert_eq!(MappingKind::named("FHIR"), None);
    }
}
