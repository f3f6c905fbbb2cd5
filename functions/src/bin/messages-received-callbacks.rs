//! `messages-received-callbacks`: `GET /dhos/v1/receiver/{receiver_id}/active/callback/message` (`vitalwire::messages::http::received_open_callbacks`).
vitalwire_functions::lambda_function!(MESSAGES_RECEIVED_CALLBACKS);
