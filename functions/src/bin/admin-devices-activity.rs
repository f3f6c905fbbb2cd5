//! `admin-devices-activity`: `GET /admin/devices/{thingName}/activity` (`vitalwire::access::http::activity`).
vitalwire_functions::lambda_function!(ADMIN_DEVICES_ACTIVITY);
