//! `alert-sweep`: every minute, the alert flows with work due (`vitalwire::clinical::alerting::sweep`).
vitalwire_functions::lambda_function!(ALERT_SWEEP);
