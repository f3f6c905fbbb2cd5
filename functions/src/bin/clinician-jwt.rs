//! `clinician-jwt`: `GET /dhos/v1/clinician/jwt` (`vitalwire::activation::http::clinicians::clinician_jwt`).
vitalwire_functions::lambda_function!(CLINICIAN_JWT);
