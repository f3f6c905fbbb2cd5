//! IoMT mapping (issue 10): device-mapping templates turn any device JSON into normalized
//! measurements, and FHIR-mapping templates turn those into FHIR R4 Observations, with the
//! semantics of the open-source IoMT FHIR connector (microsoft/iomt-fhir), so that the
//! templates its users wrote for Azure's MedTech service run unchanged. A pure domain: no AWS
//! calls. What the connector does, with its source files, is in `docs/iomt-fhir/`.
//!
//! - loading: the template envelope and type names ([`templates`]), error positions
//!   ([`locate`]), device mappings ([`content`]) and FHIR mappings ([`fhir_templates`]);
//! - normalization ([`content`]): JSONPath in Json.NET's dialect ([`jsonpath`]), JMESPath with
//!   the connector's functions ([`jmespath`]), values as .NET writes them ([`values`]),
//!   measurements ([`measurement`]);
//! - conversion ([`convert`]): grouping ([`grouping`]), identity resolution over a registry
//!   port ([`identity`]), Observations created and merged ([`observation`], [`sampled_data`]).

pub mod content;
pub mod convert;
pub mod debugger;
pub mod fhir_templates;
pub mod grouping;
pub mod identity;
pub mod jmespath;
pub mod jsonpath;
pub mod locate;
pub mod measurement;
pub mod observation;
pub mod sampled_data;
pub mod templates;
pub mod values;

#[cfg(test)]
mod ported;
