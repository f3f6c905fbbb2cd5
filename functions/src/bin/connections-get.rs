//! `connections-get`: `GET /connectors/{connectorName}/connections/{connectionName}` (`vitalwire::connectors::http::get_connection`).
vitalwire_functions::lambda_function!(CONNECTIONS_GET);
