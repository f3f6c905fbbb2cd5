//! `admin-patient-audit`: `GET /admin/patients/{patientId}/audit` (`vitalwire::access::http::patient_audit`).
vitalwire_functions::lambda_function!(ADMIN_PATIENT_AUDIT);
