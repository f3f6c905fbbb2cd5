//! The platform's resources on the emulator, created from `template.yaml`.

use std::collections::BTreeMap;

use vitalwire::stack::{create_table, EnvValue, FunctionDefinition, StackError, Template};

use crate::repo_root;

/// Tables created from the template, by logical id.
#[derive(Debug, Clone)]
pub struct LocalStack {
    pub template: Template,
    /// Logical id → physical name.
    pub tables: BTreeMap<String, String>,
    /// Logical id → bucket name.
    pub buckets: BTreeMap<String, String>,
    /// Logical id → secret name.
    pub secrets: BTreeMap<String, String>,
}

/// A function's environment could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error("{function}: environment variable {variable} refers to {target}, which the local stack does not provide")]
pub struct UnresolvedEnv {
    pub function: String,
    pub variable: String,
    pub target: String,
}

impl LocalStack {
    /// Reads the repository's `template.yaml`.
    pub fn template() -> Result<Template, StackError> {
        Template::load(&repo_root().join("template.yaml"))
    }

    /// Creates every table of the template, named `<prefix><LogicalId>`, every bucket, named
    /// `<prefix><logicalid>` in lower case, and every secret, named `<prefix><LogicalId>`, with a
    /// random value as `GenerateSecretString` makes one.
    pub async fn create(config: &aws_config::SdkConfig, template: Template, prefix: &str) -> Result<Self, StackError> {
        let client = &vitalwire::aws::dynamodb(config);
        let s3 = &vitalwire::aws::s3(config);
        let mut tables = BTreeMap::new();
        for table in template.tables()? {
            let name = format!("{prefix}{}", table.logical_id);
            create_table(client, &table, &name).await?;
            tables.insert(table.logical_id, name);
        }
        let mut buckets = BTreeMap::new();
        for logical in template.buckets() {
            let name = format!("{prefix}{logical}").to_lowercase();
            s3.create_bucket().bucket(&name).send().await.map_err(|e| StackError::Create {
                table: name.clone(),
                message: vitalwire::dynamo::describe(&e),
            })?;
            buckets.insert(logical, name);
        }
        let mut secrets = BTreeMap::new();
        let secrets_manager = aws_sdk_secretsmanager::Client::new(config);
        for logical in template.secrets() {
            let name = format!("{prefix}{logical}");
            let failed = |message: String| StackError::Create { table: name.clone(), message };
            let mut random = [0u8; 32];
            getrandom::fill(&mut random).map_err(|e| failed(e.to_string()))?;
            secrets_manager
                .create_secret()
                .name(&name)
                .secret_string(hex::encode(random))
                .send()
                .await
                .map_err(|e| failed(vitalwire::dynamo::describe(&e)))?;
            secrets.insert(logical, name);
        }
        Ok(Self { template, tables, buckets, secrets })
    }

    /// The name of a bucket by its logical id.
    pub fn bucket(&self, logical_id: &str) -> Option<&str> {
        self.buckets.get(logical_id).map(String::as_str)
    }

    /// The physical name of a table by its logical id.
    pub fn table(&self, logical_id: &str) -> Option<&str> {
        self.tables.get(logical_id).map(String::as_str)
    }

    /// The function with this cargo binary name.
    pub fn function(&self, binary: &str) -> Option<FunctionDefinition> {
        self.template.functions().into_iter().find(|f| f.binary.as_deref() == Some(binary))
    }

    /// A function's environment as CloudFormation would set it: `!Ref Table` becomes the name.
    pub fn function_env(&self, function: &FunctionDefinition) -> Result<Vec<(String, String)>, UnresolvedEnv> {
        function
            .environment
            .iter()
            .map(|(name, value)| {
                let unresolved = |target: String| UnresolvedEnv {
                    function: function.logical_id.clone(),
                    variable: name.clone(),
                    target,
                };
                match value {
                    EnvValue::Literal(v) => Ok((name.clone(), v.clone())),
                    EnvValue::Ref(r) => self
                        .table(r)
                        .or_else(|| self.bucket(r))
                        .or_else(|| self.secrets.get(r).map(String::as_str))
                        .map(str::to_owned)
                        .or_else(|| self.template.parameter_default(r))
                        .map(|t| (name.clone(), t))
                        .ok_or_else(|| unresolved(r.clone())),
                    EnvValue::Other => Err(unresolved("an intrinsic function".into())),
                }
            })
            .collect()
    }
}
