//! `iot-status`: `GET /api/iot/status` (`vitalwire::ingest::http::status`).
vitalwire_functions::lambda_function!(IOT_STATUS);
