//! `admin-devices-assign`: `PUT /admin/devices/{thingName}/patient` (`vitalwire::devices::http::assign_patient`).
vitalwire_functions::lambda_function!(ADMIN_DEVICES_ASSIGN);
