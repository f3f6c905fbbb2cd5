//! `entry-device-jwt`: `GET /dhos/v1/device/{device_id}/jwt` (`vitalwire::activation::http::devices::device_jwt`).
vitalwire_functions::lambda_function!(ENTRY_DEVICE_JWT);
