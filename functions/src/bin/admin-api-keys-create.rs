//! `admin-api-keys-create`: `POST /admin/devices/{thingName}/api-keys` (`vitalwire::access::http::create`).
vitalwire_functions::lambda_function!(ADMIN_API_KEYS_CREATE);
