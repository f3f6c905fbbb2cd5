//! `messages-create`: `POST /dhos/v2/message` (`vitalwire::messages::http::create`).
vitalwire_functions::lambda_function!(MESSAGES_CREATE);
