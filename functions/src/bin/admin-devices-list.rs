//! `admin-devices-list`: `GET /admin/devices` (`vitalwire::devices::http::list`).
vitalwire_functions::lambda_function!(ADMIN_DEVICES_LIST);
