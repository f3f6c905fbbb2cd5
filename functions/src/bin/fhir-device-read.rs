//! `fhir-device-read`: GET /fhir/Device/{id} (vitalwire::fhir_api::http::read_device).
vitalwire_functions::lambda_function!(FHIR_DEVICE_READ);
