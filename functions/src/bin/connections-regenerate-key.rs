//! `connections-regenerate-key`: `POST /connectors/{connectorName}/connections/{connectionName}/regenerateKey` (`vitalwire::connectors::http::regenerate_key`).
vitalwire_functions::lambda_function!(CONNECTIONS_REGENERATE_KEY);
