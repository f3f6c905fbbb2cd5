//! `inbox-processor`: S3 `ObjectCreated` under `inbox/`: reading files filed, archived or failed (`vitalwire::ingest::inbox`).
vitalwire_functions::lambda_function!(INBOX_PROCESSOR);
