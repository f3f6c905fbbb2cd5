//! `iot-vitals-batch`: `POST /api/iot/vitals/batch` (`vitalwire::ingest::http::submit_batch`).
vitalwire_functions::lambda_function!(IOT_VITALS_BATCH);
