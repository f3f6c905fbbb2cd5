//! `patient-alerts-acknowledge`: `POST /patients/{patientId}/alerts/{alertId}/acknowledge` (`vitalwire::clinical::http::acknowledge`).
vitalwire_functions::lambda_function!(PATIENT_ALERTS_ACKNOWLEDGE);
