//! `messages-create-v1`: `POST /dhos/v1/message` (`vitalwire::messages::http::create_v1`).
vitalwire_functions::lambda_function!(MESSAGES_CREATE_V1);
