//! `fhir-document-read`: GET /fhir/DocumentReference/{id} (vitalwire::fhir_api::http::read_document).
vitalwire_functions::lambda_function!(FHIR_DOCUMENT_READ);
