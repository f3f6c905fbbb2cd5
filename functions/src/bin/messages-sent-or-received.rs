//! `messages-sent-or-received`: `GET /dhos/v1/sender_or_receiver/{unique_id}/message` (`vitalwire::messages::http::sent_or_received`).
vitalwire_functions::lambda_function!(MESSAGES_SENT_OR_RECEIVED);
