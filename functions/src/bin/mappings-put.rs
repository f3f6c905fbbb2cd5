//! `mappings-put`: `PUT /connectors/{connectorName}/mappings/{mappingKind}` (`vitalwire::connectors::http::put_mapping`).
vitalwire_functions::lambda_function!(MAPPINGS_PUT);
