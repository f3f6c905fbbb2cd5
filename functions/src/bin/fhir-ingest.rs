//! `fhir-ingest`: the IoT rule `FHIRIngest`: a device measurement filed as a FHIR Observation (`vitalwire::ingest::rule`).
vitalwire_functions::lambda_function!(FHIR_INGEST);
