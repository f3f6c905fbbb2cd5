//! `admin-api-keys-list`: `GET /admin/devices/{thingName}/api-keys` (`vitalwire::access::http::list`).
vitalwire_functions::lambda_function!(ADMIN_API_KEYS_LIST);
