//! `device-observations`: `GET /devices/{thingName}/observations` (`vitalwire::observations::http::device_observations`).
vitalwire_functions::lambda_function!(DEVICE_OBSERVATIONS);
