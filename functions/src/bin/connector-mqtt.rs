//! `connector-mqtt`: the `VitalwireConnectorMessages` IoT rule: things' connector messages queued in the connector envelope (`vitalwire::connectors::mqtt`).
vitalwire_functions::lambda_function!(CONNECTOR_MQTT);
