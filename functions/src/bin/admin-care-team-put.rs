//! `admin-care-team-put`: `PUT /admin/patients/{patientId}/care-team` (`vitalwire::care::http::put_care_team`).
vitalwire_functions::lambda_function!(ADMIN_CARE_TEAM_PUT);
