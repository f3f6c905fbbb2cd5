//! `service-version`: `GET /version` (`vitalwire::messages::http::version`).
vitalwire_functions::lambda_function!(SERVICE_VERSION);
