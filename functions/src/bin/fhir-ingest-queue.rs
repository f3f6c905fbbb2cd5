//! `fhir-ingest-queue`: the `FHIRIngest` rule's measurements queued in SQS (`IngestPath=queue`), filed in batches with partial batch failures (`vitalwire::ingest::rule::handle_queued`).
vitalwire_functions::lambda_function!(FHIR_INGEST_QUEUE);
