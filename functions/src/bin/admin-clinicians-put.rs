//! `admin-clinicians-put`: `PUT /admin/clinicians/{clinicianId}` (`vitalwire::care::http::put_clinician`).
vitalwire_functions::lambda_function!(ADMIN_CLINICIANS_PUT);
