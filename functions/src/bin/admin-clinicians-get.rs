//! `admin-clinicians-get`: `GET /admin/clinicians/{clinicianId}` (`vitalwire::care::http::get_clinician`).
vitalwire_functions::lambda_function!(ADMIN_CLINICIANS_GET);
