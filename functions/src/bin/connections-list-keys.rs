//! `connections-list-keys`: `POST /connectors/{connectorName}/connections/{connectionName}/listKeys` (`vitalwire::connectors::http::list_keys`).
vitalwire_functions::lambda_function!(CONNECTIONS_LIST_KEYS);
