//! `entry-device-get`: `GET /dhos/v1/device/{device_id}` (`vitalwire::activation::http::devices::get`).
vitalwire_functions::lambda_function!(ENTRY_DEVICE_GET);
