//! `alert-answer-page`: `GET /alerts/answer/{token}` (`vitalwire::clinical::http::answer_page`).
vitalwire_functions::lambda_function!(ALERT_ANSWER_PAGE);
