//! `connections-delete`: `DELETE /connectors/{connectorName}/connections/{connectionName}` (`vitalwire::connectors::http::delete_connection`).
vitalwire_functions::lambda_function!(CONNECTIONS_DELETE);
