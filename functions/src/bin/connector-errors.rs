//! `connector-errors`: `GET /connectors/{connectorName}/errors` (`vitalwire::connectors::http::list_errors`).
vitalwire_functions::lambda_function!(CONNECTOR_ERRORS);
