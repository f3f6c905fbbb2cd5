//! `admin-api-keys-revoke`: `DELETE /admin/devices/{thingName}/api-keys/{keyId}` (`vitalwire::access::http::revoke`).
vitalwire_functions::lambda_function!(ADMIN_API_KEYS_REVOKE);
