//! `admin-devices-status`: `PUT /admin/devices/{thingName}/status` (`vitalwire::devices::http::set_status`).
vitalwire_functions::lambda_function!(ADMIN_DEVICES_STATUS);
