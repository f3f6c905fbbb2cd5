//! `admin-firmware-register`: `POST /admin/firmware` (`vitalwire::firmware::http::register`).
vitalwire_functions::lambda_function!(ADMIN_FIRMWARE_REGISTER);
