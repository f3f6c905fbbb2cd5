//! `connectors-list`: `GET /connectors` (`vitalwire::connectors::http::list`).
vitalwire_functions::lambda_function!(CONNECTORS_LIST);
