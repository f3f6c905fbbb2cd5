//! `device-documents`: `GET /devices/{thingName}/documents` (`vitalwire::files::http::device_documents`).
vitalwire_functions::lambda_function!(DEVICE_DOCUMENTS);
