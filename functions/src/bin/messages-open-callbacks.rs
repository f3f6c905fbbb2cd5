//! `messages-open-callbacks`: `POST /dhos/v1/active/callback/message` (`vitalwire::messages::http::open_callbacks`).
vitalwire_functions::lambda_function!(MESSAGES_OPEN_CALLBACKS);
