//! `vitalwire-lambda-ingest`: the functions of `INGEST_BUNDLE` (`vitalwire::wiring::functions`),
//! each run by the entry its `Handler` names.
vitalwire_functions::lambda_bundle!(INGEST_BUNDLE);
