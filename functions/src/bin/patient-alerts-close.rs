//! `patient-alerts-close`: `POST /patients/{patientId}/alerts/{alertId}/close` and `/resolve` (`vitalwire::clinical::http::close`).
vitalwire_functions::lambda_function!(PATIENT_ALERTS_CLOSE);
