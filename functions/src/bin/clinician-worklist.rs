//! `clinician-worklist`: `GET /worklist` (`vitalwire::clinical::http::worklist`).
vitalwire_functions::lambda_function!(CLINICIAN_WORKLIST);
