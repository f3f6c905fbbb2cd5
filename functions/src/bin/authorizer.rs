//! `authorizer`: the HTTP API's Lambda authorizer (`vitalwire::access::authorizer`).
vitalwire_functions::lambda_function!(AUTHORIZER);
