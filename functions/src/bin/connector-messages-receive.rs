//! `connector-messages-receive`: `POST /connectors/{connectorName}/messages` (`vitalwire::connectors::http::receive_messages`).
vitalwire_functions::lambda_function!(CONNECTOR_MESSAGES_RECEIVE);
