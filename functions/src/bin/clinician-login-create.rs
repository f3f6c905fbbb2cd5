//! `clinician-login-create`: `POST /dhos/v1/clinician` (`vitalwire::activation::http::clinicians::create`).
vitalwire_functions::lambda_function!(CLINICIAN_LOGIN_CREATE);
