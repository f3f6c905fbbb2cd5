//! `messages-update`: `PATCH /dhos/v1/message/{message_id}` (`vitalwire::messages::http::update`).
vitalwire_functions::lambda_function!(MESSAGES_UPDATE);
