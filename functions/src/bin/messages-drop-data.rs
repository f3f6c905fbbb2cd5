//! `messages-drop-data`: `POST /drop_data` (`vitalwire::messages::http::drop_data`).
vitalwire_functions::lambda_function!(MESSAGES_DROP_DATA);
