//! `connectors-get`: `GET /connectors/{connectorName}` (`vitalwire::connectors::http::get`).
vitalwire_functions::lambda_function!(CONNECTORS_GET);
