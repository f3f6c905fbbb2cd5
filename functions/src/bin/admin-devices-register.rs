//! `admin-devices-register`: `POST /admin/devices` (`vitalwire::devices::http::register`).
vitalwire_functions::lambda_function!(ADMIN_DEVICES_REGISTER);
