//! `fhir-patient-read`: GET /fhir/Patient/{id} (vitalwire::fhir_api::http::read_patient).
vitalwire_functions::lambda_function!(FHIR_PATIENT_READ);
