//! `admin-locations-get`: `GET /admin/locations/{locationId}` (`vitalwire::care::http::get_location`).
vitalwire_functions::lambda_function!(ADMIN_LOCATIONS_GET);
