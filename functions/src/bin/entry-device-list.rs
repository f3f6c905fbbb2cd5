//! `entry-device-list`: `GET /dhos/v1/device` (`vitalwire::activation::http::devices::list`).
vitalwire_functions::lambda_function!(ENTRY_DEVICE_LIST);
