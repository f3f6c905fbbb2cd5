//! `patient-alerts-answer`: `POST /patients/{patientId}/alerts/{alertId}/answer` (`vitalwire::clinical::http::answer`).
vitalwire_functions::lambda_function!(PATIENT_ALERTS_ANSWER);
