//! Vitalwire on one machine, without an AWS account or containers.
//!
//! - [`emulator`]: the moto AWS emulator on a loopback port, owned by this process.
//! - [`stack`]: tables created from `template.yaml`, and each function's environment resolved
//!   the way CloudFormation would resolve it.
//! - [`runtime_api`]: a Lambda Runtime API stand-in that runs the real function binaries.
//! - [`hosted_ui`] and [`console`]: the stand-in for Cognito's hosted UI (sign-in by OAuth 2.0
//!   code and PKCE) and the clinician console, served by the HTTP API.
//!
//! The integration tests use the same pieces.

pub mod console;
pub mod emulator;
pub mod functions;
pub mod gateway;
pub mod hosted_ui;
pub mod http_api;
pub mod metrics;
pub mod platform;
pub mod runtime_api;
pub mod s3_events;
pub mod scheduler;
pub mod sqs_events;
pub mod stack;

use std::path::PathBuf;

/// The repository root (where `template.yaml` is), from `VITALWIRE_ROOT` or this crate's location.
pub fn repo_root() -> PathBuf {
    let root = std::env::var_os("VITALWIRE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
    root.canonicalize().unwrap_or(root)
}

/// The Python of the project's virtualenv (`scripts/dev-env.sh` creates it), or `VITALWIRE_PYTHON`.
pub fn python() -> PathBuf {
    std::env::var_os("VITALWIRE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"))
}

/// Checks FHIR resources (one JSON resource, or a JSON array of them) with the independent
/// validators of `infra/local/validate_fhir.py`; the error carries the validators' report.
pub fn validate_fhir(resources_json: &str) -> Result<(), String> {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let script = repo_root().join("infra/local/validate_fhir.py");
    let mut child = Command::new(python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run the FHIR validator ({}): {e}; run scripts/dev-env.sh", python().display()))?;
    child
        .stdin
        .take()
        .ok_or("validator has no stdin")?
        .write_all(resources_json.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(())
    } else {
        Err(report)
    }
}

/// Secrets on disk (private keys, signing keys, the file that names the Polaris key): readable
/// and writable by their owner only.
pub mod private_file {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    use std::path::Path;

    const OWNER_ONLY: u32 = 0o600;

    /// Writes `contents` to a file only its owner may read (also when it existed, wider, before).
    pub fn write(path: &Path, contents: &[u8]) -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(OWNER_ONLY).open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(OWNER_ONLY))?;
        file.write_all(contents)
    }

    /// Makes an existing file the owner's only (one an earlier version wrote readable by all).
    pub fn restrict(path: &Path) -> std::io::Result<()> {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(OWNER_ONLY))
    }
}
