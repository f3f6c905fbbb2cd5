//! `vitalwire-lambda-clinical`: the functions of `CLINICAL_BUNDLE` (`vitalwire::wiring::functions`),
//! each run by the entry its `Handler` names.
vitalwire_functions::lambda_bundle!(CLINICAL_BUNDLE);
