//! `admin-encounters-register`: `POST /admin/patients/{patientId}/encounters` (`vitalwire::patients::http::register_encounter`).
vitalwire_functions::lambda_function!(ADMIN_ENCOUNTERS_REGISTER);
