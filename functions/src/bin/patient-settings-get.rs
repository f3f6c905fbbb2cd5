//! `patient-settings-get`: `GET /patients/{patientId}/settings` (`vitalwire::care::http::get_settings`).
vitalwire_functions::lambda_function!(PATIENT_SETTINGS_GET);
