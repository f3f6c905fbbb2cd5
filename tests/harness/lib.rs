//! Test harness: one moto emulator per test binary on a free loopback port (stopped when the
//! binary exits), tables created from `template.yaml` under a fresh prefix per test, and the
//! independent FHIR validators.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use aws_config::SdkConfig;
use vitalwire_local::emulator::Emulator;
use vitalwire_local::stack::LocalStack;

pub use vitalwire_local::{repo_root, validate_fhir};

fn emulator() -> &'static Emulator {
    static EMULATOR: OnceLock<Emulator> = OnceLock::new();
    EMULATOR.get_or_init(|| {
        let emulator = Emulator::start(0).unwrap_or_else(|e| panic!("{e}"));
        // Exactly what a function gets in local mode: the SDK's standard variables.
        for (k, v) in emulator.aws_environment() {
            std::env::set_var(k, v);
        }
        emulator
    })
}

/// The environment that points a function process at the emulator.
pub fn emulator_environment() -> Vec<(String, String)> {
    emulator().aws_environment().into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// AWS configuration built the way the functions build it, pointed at the emulator.
pub async fn aws_config() -> SdkConfig {
    emulator();
    vitalwire::aws::load_config().await
}

/// A fresh set of the template's tables on the emulator.
pub struct TestStack {
    pub config: SdkConfig,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub stack: LocalStack,
}

impl TestStack {
    pub async fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!("t{}-{}-", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let config = aws_config().await;
        let dynamodb = vitalwire::aws::dynamodb(&config);
        let template = LocalStack::template().expect("template.yaml parses");
        let stack = LocalStack::create(&dynamodb, template, &prefix).await.expect("tables from template.yaml");
        Self { config, dynamodb, stack }
    }

    /// The physical name of a table of the template.
    pub fn table(&self, spec: &vitalwire::tables::TableSpec) -> String {
        self.stack.table(spec.logical_id).expect("table in template").to_owned()
    }

    /// How many items a table holds (a scan; test tables are small).
    pub async fn count(&self, spec: &vitalwire::tables::TableSpec) -> i32 {
        let out = self.dynamodb.scan().table_name(self.table(spec)).send().await.expect("scan");
        out.count()
    }
}

/// Asserts that the resources (a JSON array or one resource) pass the FHIR validators.
pub fn assert_valid_fhir(resources_json: &str) {
    if let Err(report) = validate_fhir(resources_json) {
        panic!("FHIR validation failed:\n{report}\nfor: {resources_json}");
    }
}

/// A function binary built by `cargo build -p vitalwire-functions` (which `scripts/test.sh` runs
/// first): test executables live in `<target>/debug/deps`, the binaries in `<target>/debug`.
pub fn function_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    let binary = dir.join(name);
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p vitalwire-functions` (scripts/test.sh does)",
        binary.display()
    );
    binary
}
