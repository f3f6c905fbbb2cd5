//! `messages-sent-active`: `GET /dhos/v1/sender/{sender_id}/active/message` (`vitalwire::messages::http::sent_active`).
vitalwire_functions::lambda_function!(MESSAGES_SENT_ACTIVE);
