//! `admin-inbox-files`: `GET /admin/inbox/files` and `GET /admin/inbox/files/{fileId}` (`vitalwire::ingest::inbox::http::files`).
vitalwire_functions::lambda_function!(ADMIN_INBOX_FILES);
