//! `messages-create-batch`: `POST /create_messages` (`vitalwire::messages::http::create_batch`).
vitalwire_functions::lambda_function!(MESSAGES_CREATE_BATCH);
