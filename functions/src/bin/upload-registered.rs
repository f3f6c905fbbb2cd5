//! `upload-registered`: S3 `ObjectCreated` under `uploads/`: the upload completed as a DocumentReference (`vitalwire::files::registration`).
vitalwire_functions::lambda_function!(UPLOAD_REGISTERED);
