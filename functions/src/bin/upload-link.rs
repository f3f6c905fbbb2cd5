//! `upload-link`: the IoT rule `CreateFileUploadLink`: a presigned upload URL for the device (`vitalwire::files`).
vitalwire_functions::lambda_function!(UPLOAD_LINK);
