//! `provisioning-hook`: the fleet-provisioning pre-provisioning hook (`vitalwire::devices::provisioning`).
vitalwire_functions::lambda_function!(PROVISIONING_HOOK);
