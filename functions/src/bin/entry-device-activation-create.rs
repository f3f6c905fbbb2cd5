//! `entry-device-activation-create`: `POST /dhos/v1/device/{device_id}/activation` (`vitalwire::activation::http::devices::create_activation`).
vitalwire_functions::lambda_function!(ENTRY_DEVICE_ACTIVATION_CREATE);
