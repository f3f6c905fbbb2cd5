//! `admin-clinicians-list`: `GET /admin/clinicians` (`vitalwire::care::http::list_clinicians`).
vitalwire_functions::lambda_function!(ADMIN_CLINICIANS_LIST);
