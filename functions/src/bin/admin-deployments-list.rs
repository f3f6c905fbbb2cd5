//! `admin-deployments-list`: `GET /admin/firmware/deployments` (`vitalwire::firmware::http::list_deployments`).
vitalwire_functions::lambda_function!(ADMIN_DEPLOYMENTS_LIST);
