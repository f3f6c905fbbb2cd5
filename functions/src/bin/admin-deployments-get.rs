//! `admin-deployments-get`: `GET /admin/firmware/deployments/{deploymentId}` (`vitalwire::firmware::http::get`).
vitalwire_functions::lambda_function!(ADMIN_DEPLOYMENTS_GET);
