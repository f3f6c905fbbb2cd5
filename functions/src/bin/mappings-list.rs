//! `mappings-list`: `GET /connectors/{connectorName}/mappings` (`vitalwire::connectors::http::list_mappings`).
vitalwire_functions::lambda_function!(MAPPINGS_LIST);
