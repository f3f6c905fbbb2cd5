//! `messages-received-active`: `GET /dhos/v1/receiver/{receiver_id}/active/message` (`vitalwire::messages::http::received_active`).
vitalwire_functions::lambda_function!(MESSAGES_RECEIVED_ACTIVE);
