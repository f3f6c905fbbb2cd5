//! `admin-firmware-list`: `GET /admin/firmware` (`vitalwire::firmware::http::list`).
vitalwire_functions::lambda_function!(ADMIN_FIRMWARE_LIST);
