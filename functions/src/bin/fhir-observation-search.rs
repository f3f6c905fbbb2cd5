//! `fhir-observation-search`: GET /fhir/Observation (vitalwire::fhir_api::http::search_observations).
vitalwire_functions::lambda_function!(FHIR_OBSERVATION_SEARCH);
