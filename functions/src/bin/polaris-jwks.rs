//! `polaris-jwks`: `GET /.well-known/jwks.json` (`vitalwire::activation::http::jwks`).
vitalwire_functions::lambda_function!(POLARIS_JWKS);
