//! `patient-alerts-history`: `GET /patients/{patientId}/alerts/{alertId}/history` (`vitalwire::clinical::http::history`).
vitalwire_functions::lambda_function!(PATIENT_ALERTS_HISTORY);
