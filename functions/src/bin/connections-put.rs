//! `connections-put`: `PUT /connectors/{connectorName}/connections/{connectionName}` (`vitalwire::connectors::http::put_connection`).
vitalwire_functions::lambda_function!(CONNECTIONS_PUT);
