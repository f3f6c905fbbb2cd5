//! `admin-deployments-cancel`: `POST /admin/firmware/deployments/{deploymentId}/cancel` (`vitalwire::firmware::http::cancel`).
vitalwire_functions::lambda_function!(ADMIN_DEPLOYMENTS_CANCEL);
