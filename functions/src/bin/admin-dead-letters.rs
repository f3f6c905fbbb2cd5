//! `admin-dead-letters`: `GET /admin/dead-letters` (`vitalwire::dead_letters::http::list`).
vitalwire_functions::lambda_function!(ADMIN_DEAD_LETTERS);
