//! `entry-device-create`: `POST /dhos/v1/device` (`vitalwire::activation::http::devices::create`).
vitalwire_functions::lambda_function!(ENTRY_DEVICE_CREATE);
