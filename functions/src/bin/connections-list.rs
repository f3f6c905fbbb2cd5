//! `connections-list`: `GET /connectors/{connectorName}/connections` (`vitalwire::connectors::http::list_connections`).
vitalwire_functions::lambda_function!(CONNECTIONS_LIST);
