//! `alert-answer-link`: `POST /alerts/answer/{token}` (`vitalwire::clinical::http::answer_by_link`).
vitalwire_functions::lambda_function!(ALERT_ANSWER_LINK);
