//! `mappings-delete`: `DELETE /connectors/{connectorName}/mappings/{mappingKind}` (`vitalwire::connectors::http::delete_mapping`).
vitalwire_functions::lambda_function!(MAPPINGS_DELETE);
