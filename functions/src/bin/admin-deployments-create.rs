//! `admin-deployments-create`: `POST /admin/firmware/deployments` (`vitalwire::firmware::http::create`).
vitalwire_functions::lambda_function!(ADMIN_DEPLOYMENTS_CREATE);
