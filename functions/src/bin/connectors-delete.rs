//! `connectors-delete`: `DELETE /connectors/{connectorName}` (`vitalwire::connectors::http::delete`).
vitalwire_functions::lambda_function!(CONNECTORS_DELETE);
