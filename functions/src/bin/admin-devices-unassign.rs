//! `admin-devices-unassign`: `DELETE /admin/devices/{thingName}/patient` (`vitalwire::devices::http::unassign_patient`).
vitalwire_functions::lambda_function!(ADMIN_DEVICES_UNASSIGN);
