//! `mappings-debug`: `POST /connectors/{connectorName}/mappings/debug` (`vitalwire::connectors::http::debug_mappings`).
vitalwire_functions::lambda_function!(MAPPINGS_DEBUG);
