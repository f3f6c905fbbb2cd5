//! `entry-device-update`: `PATCH /dhos/v1/device/{device_id}` (`vitalwire::activation::http::devices::update`).
vitalwire_functions::lambda_function!(ENTRY_DEVICE_UPDATE);
