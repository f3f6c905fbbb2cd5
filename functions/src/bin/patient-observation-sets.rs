//! `patient-observation-sets`: `POST /patients/{patientId}/observation-sets` (`vitalwire::clinical::http::submit_set`).
vitalwire_functions::lambda_function!(PATIENT_OBSERVATION_SETS);
