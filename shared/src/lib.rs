//! Vitalwire's core, by domain:
//!
//! - [`devices`]: the device registry, who may file readings ([`devices::admit`]), fleet
//!   provisioning's hook, the device admin routes;
//! - [`ingest`]: the filing service, the one way a reading is admitted, filed and scored, and
//!   its ways in: the `FHIRIngest` rule, the vitals REST API, the S3 inbox;
//! - [`observations`]: readings as FHIR R4 Observations, and their store;
//! - [`clinical`]: NEWS2 and alerts;
//! - [`patients`]: patient records (those connectors create);
//! - [`connectors`]: IoMT connectors: control plane, data plane, and the consumer that files their Observations;
//! - [`mapping`]: the IoMT mapping engine (device and FHIR mapping templates);
//! - [`messages`]: clinician–patient messages compatible with the Polaris messages API;
//! - [`activation`]: patients' apps, ward tablets and clinicians signing in, compatible with
//!   the Polaris activation API;
//! - [`care`]: care teams: clinicians, locations, who looks after whom, patients' clinical settings;
//! - [`files`]: device uploads (upload links, registration as DocumentReferences);
//! - [`firmware`]: firmware images and deployments through IoT Jobs;
//! - [`access`]: people's tokens, device API keys, the HTTP API's authorizer, the activity log;
//! - [`dead_letters`]: every refused message, with its reason, for the operator;
//! - [`fhir`]: FHIR datatypes and the vital-sign catalogue;
//! - [`platform`]: shared plumbing (AWS clients, DynamoDB and HTTP helpers, tables, time);
//! - [`wiring`]: the registry of functions: trigger, handler and how its dependencies are built.
//!
//! Each domain has one shape: `mod.rs` for its model, ports (small traits) and logic;
//! `dynamodb.rs`, `s3.rs`, `iot.rs` for the adapters that implement the ports with the AWS SDK;
//! `http.rs` for its HTTP routes; `memory.rs` for in-memory ports in unit tests.

pub mod access;
pub mod activation;
pub mod care;
pub mod clinical;
pub mod connectors;
pub mod dead_letters;
pub mod devices;
pub mod fhir;
pub mod fhir_api;
pub mod files;
pub mod firmware;
pub mod ingest;
pub mod mapping;
pub mod messages;
pub mod observations;
pub mod patients;
pub mod platform;
pub mod wiring;

pub use platform::{time, StoreError};
