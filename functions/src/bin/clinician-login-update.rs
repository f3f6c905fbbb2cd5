//! `clinician-login-update`: `PATCH /dhos/v1/clinician/{clinician_id}` (`vitalwire::activation::http::clinicians::update`).
vitalwire_functions::lambda_function!(CLINICIAN_LOGIN_UPDATE);
