//! `activation-create`: `POST /dhos/v1/patient/{patient_id}/activation` (`vitalwire::activation::http::create`).
vitalwire_functions::lambda_function!(ACTIVATION_CREATE);
