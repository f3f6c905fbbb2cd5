//! `messages-get`: `GET /dhos/v1/message/{message_id}` (`vitalwire::messages::http::get`).
vitalwire_functions::lambda_function!(MESSAGES_GET);
