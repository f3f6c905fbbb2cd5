//! `service-running`: `GET /running` (`vitalwire::messages::http::running`).
vitalwire_functions::lambda_function!(SERVICE_RUNNING);
