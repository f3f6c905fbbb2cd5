//! `admin-locations-put`: `PUT /admin/locations/{locationId}` (`vitalwire::care::http::put_location`).
vitalwire_functions::lambda_function!(ADMIN_LOCATIONS_PUT);
