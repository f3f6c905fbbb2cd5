//! `vitalwire-lambda-connectors`: the functions of `CONNECTORS_BUNDLE` (`vitalwire::wiring::functions`),
//! each run by the entry its `Handler` names.
vitalwire_functions::lambda_bundle!(CONNECTORS_BUNDLE);
