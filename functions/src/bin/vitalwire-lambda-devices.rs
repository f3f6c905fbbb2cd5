//! `vitalwire-lambda-devices`: the functions of `DEVICES_BUNDLE` (`vitalwire::wiring::functions`),
//! each run by the entry its `Handler` names.
vitalwire_functions::lambda_bundle!(DEVICES_BUNDLE);
