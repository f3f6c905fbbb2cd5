//! `vitalwire-lambda-admin`: the functions of `ADMIN_BUNDLE` (`vitalwire::wiring::functions`),
//! each run by the entry its `Handler` names.
vitalwire_functions::lambda_bundle!(ADMIN_BUNDLE);
