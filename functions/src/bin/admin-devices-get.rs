//! `admin-devices-get`: `GET /admin/devices/{thingName}` (`vitalwire::devices::http::get`).
vitalwire_functions::lambda_function!(ADMIN_DEVICES_GET);
