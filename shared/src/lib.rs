//! Vitalwire's core: the domain (devices, measurements, FHIR resources), the ports handlers
//! depend on, their AWS adapters, and one handler module per Lambda function.
//!
//! Handlers are plain async functions over small traits; `functions/src/bin/*.rs` build the
//! AWS-backed dependencies once per cold start and hand events to them, and the tests and
//! the local stack drive the very same functions.

pub mod api_keys;
pub mod auth;
pub mod activity;
pub mod admin;
pub mod alerts;
pub mod api;
pub mod authorizer;
pub mod aws;
pub mod dead_letters;
pub mod deployments;
pub mod devices;
pub mod dynamo;
pub mod fhir;
pub mod fhir_api;
pub mod firmware;
pub mod inbox;
pub mod ingest;
pub mod job_events;
pub mod measurement;
pub mod news2;
#[cfg(test)]
pub(crate) mod memory;
pub mod observations;
pub mod pipeline;
pub mod provisioning;
pub mod readings;
#[cfg(feature = "stack")]
pub mod stack;
pub mod tables;
pub mod telemetry;
pub mod time;
pub mod uploads;
pub mod vitals;
pub mod vitals_api;

/// A storage or AWS call failed for a reason that may pass (throttling, network, service).
///
/// Handlers let it fail the invocation so the event source retries or keeps the event.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct StoreError {
    pub operation: &'static str,
    pub message: String,
}

impl StoreError {
    pub fn new(operation: &'static str, err: impl std::fmt::Display) -> Self {
        Self { operation, message: err.to_string() }
    }
}
