//! `connectors-put`: `PUT /connectors/{connectorName}` (`vitalwire::connectors::http::put`).
vitalwire_functions::lambda_function!(CONNECTORS_PUT);
