//! `patient-settings-put`: `PUT /patients/{patientId}/settings` (`vitalwire::care::http::put_settings`).
vitalwire_functions::lambda_function!(PATIENT_SETTINGS_PUT);
