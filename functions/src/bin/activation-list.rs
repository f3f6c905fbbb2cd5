//! `activation-list`: `GET /dhos/v1/patient/{patient_id}/activation` (`vitalwire::activation::http::list`).
vitalwire_functions::lambda_function!(ACTIVATION_LIST);
