//! `messages-between-active`: `GET /dhos/v1/sender/{sender_id}/receiver/{receiver_id}/active/message` (`vitalwire::messages::http::between_active`).
vitalwire_functions::lambda_function!(MESSAGES_BETWEEN_ACTIVE);
