//! `admin-locations-list`: `GET /admin/locations` (`vitalwire::care::http::list_locations`).
vitalwire_functions::lambda_function!(ADMIN_LOCATIONS_LIST);
