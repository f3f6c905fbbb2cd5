//! The moto AWS emulator (DynamoDB, S3, IoT control plane) as a child process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::{python, repo_root};

/// The emulator could not be started.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot start {python}: {message} (run scripts/dev-env.sh to create the virtualenv)")]
    Spawn { python: String, message: String },
    #[error("the emulator did not report its port: {0}")]
    NotReady(String),
}

/// A running emulator. It stops when this value is dropped, and also when this process exits
/// for any reason, because it watches its standard input (see `infra/local/emulator.py`).
pub struct Emulator {
    child: Child,
    pub port: u16,
}

impl Emulator {
    /// Starts an emulator on `port` (0 picks a free one) and waits until it serves (< 1 s).
    pub fn start(port: u16) -> Result<Self, EmulatorError> {
        let python = python();
        let script = repo_root().join("infra/local/emulator.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| EmulatorError::Spawn { python: python.display().to_string(), message: e.to_string() })?;
        let stdout = child.stdout.take().ok_or_else(|| EmulatorError::NotReady("no stdout".into()))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map_err(|e| EmulatorError::NotReady(e.to_string()))?;
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| EmulatorError::NotReady(format!("unexpected output {line:?}")))?;
        Ok(Self { child, port })
    }

    /// The endpoint URL for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment that points the AWS SDK (and so every function) at this emulator.
    pub fn aws_environment(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "vitalwire-local".into()),
            ("AWS_SECRET_ACCESS_KEY", "vitalwire-local".into()),
            // Never read a developer's real profile or instance credentials by accident.
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ]
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // Closing stdin asks it to stop; kill in case it is stuck.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
