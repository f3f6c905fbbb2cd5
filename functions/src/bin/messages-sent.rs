//! `messages-sent`: `GET /dhos/v1/sender/{sender_id}/message` (`vitalwire::messages::http::sent`).
vitalwire_functions::lambda_function!(MESSAGES_SENT);
