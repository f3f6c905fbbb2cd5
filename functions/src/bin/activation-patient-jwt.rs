//! `activation-patient-jwt`: `GET /dhos/v1/patient/{patient_id}/jwt` (`vitalwire::activation::http::patient_jwt`).
vitalwire_functions::lambda_function!(ACTIVATION_PATIENT_JWT);
