//! `patient-alerts`: `GET /patients/{patientId}/alerts` (`vitalwire::clinical::http::list`).
vitalwire_functions::lambda_function!(PATIENT_ALERTS);
