//! `messages-received`: `GET /dhos/v1/receiver/{receiver_id}/message` (`vitalwire::messages::http::received`).
vitalwire_functions::lambda_function!(MESSAGES_RECEIVED);
