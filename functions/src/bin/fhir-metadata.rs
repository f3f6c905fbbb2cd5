//! `fhir-metadata`: GET /fhir/metadata (vitalwire::fhir_api::http::metadata).
vitalwire_functions::lambda_function!(FHIR_METADATA);
