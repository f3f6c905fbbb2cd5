//! `fhir-observation-read`: GET /fhir/Observation/{id} (vitalwire::fhir_api::http::read_observation).
vitalwire_functions::lambda_function!(FHIR_OBSERVATION_READ);
