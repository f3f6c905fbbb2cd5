//! `vitalwire-lambda-polaris`: the functions of `POLARIS_BUNDLE` (`vitalwire::wiring::functions`),
//! each run by the entry its `Handler` names.
vitalwire_functions::lambda_bundle!(POLARIS_BUNDLE);
