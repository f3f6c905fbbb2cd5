//! `messages-between`: `GET /dhos/v1/sender/{sender_id}/receiver/{receiver_id}/message` (`vitalwire::messages::http::between`).
vitalwire_functions::lambda_function!(MESSAGES_BETWEEN);
