//! `mappings-get`: `GET /connectors/{connectorName}/mappings/{mappingKind}` (`vitalwire::connectors::http::get_mapping`).
vitalwire_functions::lambda_function!(MAPPINGS_GET);
