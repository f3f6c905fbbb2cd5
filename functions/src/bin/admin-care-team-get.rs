//! `admin-care-team-get`: `GET /admin/patients/{patientId}/care-team` (`vitalwire::care::http::get_care_team`).
vitalwire_functions::lambda_function!(ADMIN_CARE_TEAM_GET);
