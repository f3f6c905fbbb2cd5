//! `iot-vitals`: `POST /api/iot/vitals` (`vitalwire::ingest::http::submit`).
vitalwire_functions::lambda_function!(IOT_VITALS);
