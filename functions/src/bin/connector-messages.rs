//! `connector-messages`: batches of the connectors' SQS FIFO queue: normalized, converted and filed (`vitalwire::connectors::consumer`).
vitalwire_functions::lambda_function!(CONNECTOR_MESSAGES);
