//! `activation-validate`: `POST /dhos/v1/activation/{activation_code}` (`vitalwire::activation::http::validate`).
vitalwire_functions::lambda_function!(ACTIVATION_VALIDATE);
