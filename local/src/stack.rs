//! The platform's resources on the emulator, created from `template.yaml`.

use std::collections::BTreeMap;

use vitalwire::platform::stack::{create_table, EnvValue, FunctionDefinition, StackError, Template};

use crate::repo_root;

/// The region and account the local stack pretends to be in.
pub const LOCAL_REGION: &str = "us-east-1";
pub const LOCAL_ACCOUNT: &str = "000000000000";

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
    /// Logical id → KMS key id.
    pub kms_keys: BTreeMap<String, String>,
    /// Logical id → queue URL.
    pub queues: BTreeMap<String, String>,
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
    /// random value as `GenerateSecretString` makes one, every KMS key and every SQS queue.
    pub async fn create(config: &aws_config::SdkConfig, template: Template, prefix: &str) -> Result<Self, StackError> {
        let client = &vitalwire::platform::aws::dynamodb(config);
        let s3 = &vitalwire::platform::aws::s3(config);
        let mut tables = BTreeMap::new();
        for table in template.tables()? {
            let name = format!("{prefix}{}", table.logical_id);
            create_table(client, &table, &name).await?;
            tables.insert(table.logical_id, name);
        }
        let mut buckets = BTreeMap::new();
        for logical in template.buckets() {
            let name = format!("{prefix}{logical}").to_lowercase();
            let failed = |message: String| StackError::Create { table: name.clone(), message };
            s3.create_bucket().bucket(&name).send().await.map_err(|e| failed(vitalwire::platform::describe(&e)))?;
            // Versioned as the template declares: handlers act on the version an event names.
            let versioned = template
                .properties_json(&logical)
                .is_some_and(|p| p["VersioningConfiguration"]["Status"] == "Enabled");
            if versioned {
                let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build();
                s3.put_bucket_versioning()
                    .bucket(&name)
                    .versioning_configuration(enabled)
                    .send()
                    .await
                    .map_err(|e| failed(vitalwire::platform::describe(&e)))?;
            }
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
                .map_err(|e| failed(vitalwire::platform::describe(&e)))?;
            secrets.insert(logical, name);
        }
        let mut kms_keys = BTreeMap::new();
        let kms = aws_sdk_kms::Client::new(config);
        for logical in template.kms_keys() {
            let failed = |message: String| StackError::Create { table: logical.clone(), message };
            let out = kms.create_key().description(format!("{prefix}{logical}")).send().await.map_err(|e| failed(vitalwire::platform::describe(&e)))?;
            let id = out.key_metadata().map(|m| m.key_id().to_owned()).ok_or_else(|| failed("KMS answered no key id".into()))?;
            kms_keys.insert(logical, id);
        }
        let mut queues = BTreeMap::new();
        let sqs = aws_sdk_sqs::Client::new(config);
        for (logical, fifo) in template.queues() {
            // A FIFO queue's name must end in `.fifo`.
            let name = if fifo { format!("{prefix}{logical}.fifo") } else { format!("{prefix}{logical}") };
            let failed = |message: String| StackError::Create { table: name.clone(), message };
            let mut request = sqs.create_queue().queue_name(&name);
            if fifo {
                request = request.attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true");
            }
            let out = request.send().await.map_err(|e| failed(vitalwire::platform::describe(&e)))?;
            queues.insert(logical, out.queue_url().unwrap_or_default().to_owned());
        }
        // The senders SES sends from: verified, as the stack's owner verifies them on AWS.
        let ses = aws_sdk_sesv2::Client::new(config);
        for identity in template.email_identities() {
            ses.create_email_identity().email_identity(&identity).send().await.map_err(|e| StackError::Create { table: identity.clone(), message: vitalwire::platform::describe(&e) })?;
        }
        Ok(Self { template, tables, buckets, secrets, kms_keys, queues })
    }

    /// The name of a bucket by its logical id.
    pub fn bucket(&self, logical_id: &str) -> Option<&str> {
        self.buckets.get(logical_id).map(String::as_str)
    }

    /// The physical name of a table by its logical id.
    pub fn table(&self, logical_id: &str) -> Option<&str> {
        self.tables.get(logical_id).map(String::as_str)
    }

    /// The function that runs this registry entry (its `Handler`).
    pub fn function(&self, name: &str) -> Option<FunctionDefinition> {
        self.template.functions().into_iter().find(|f| f.handler.as_deref() == Some(name))
    }

    /// A function's environment as CloudFormation and Lambda would set it: `!Ref Table` becomes
    /// the name, and `_HANDLER` names the registry entry the binary runs.
    pub fn function_env(&self, function: &FunctionDefinition) -> Result<Vec<(String, String)>, UnresolvedEnv> {
        self.function_env_with(function, &BTreeMap::new())
    }

    /// A function's environment, with `overrides` for the variables the local platform sets
    /// itself (their template value may name resources that exist only on AWS).
    pub fn function_env_with(
        &self,
        function: &FunctionDefinition,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Vec<(String, String)>, UnresolvedEnv> {
        let handler = function.handler.iter().map(|h| Ok(("_HANDLER".to_owned(), h.clone())));
        let variables = function.environment.iter().map(|(name, value)| {
            let unresolved = |target: String| UnresolvedEnv { function: function.logical_id.clone(), variable: name.clone(), target };
            if let Some(v) = overrides.get(name) {
                return Ok((name.clone(), v.clone()));
            }
            let resolved = match value {
                EnvValue::Literal(v) => Some(v.clone()),
                EnvValue::Ref(r) => self.resolve_ref(r),
                EnvValue::GetAtt(a) => self.resolve_get_att(a),
                EnvValue::Sub(text) => self.resolve_sub(text).map_err(unresolved)?.into(),
                EnvValue::Other => return Err(unresolved("an intrinsic function".into())),
            };
            resolved.map(|v| (name.clone(), v)).ok_or_else(|| unresolved(format!("{value:?}")))
        });
        handler.chain(variables).collect()
    }

    /// What `!Ref` of a resource or parameter is here.
    fn resolve_ref(&self, target: &str) -> Option<String> {
        match target {
            "AWS::Partition" => Some("aws".into()),
            "AWS::Region" => Some(LOCAL_REGION.into()),
            "AWS::AccountId" => Some(LOCAL_ACCOUNT.into()),
            "AWS::URLSuffix" => Some("amazonaws.com".into()),
            // The HTTP API has no id here; the local platform gives functions its own URL.
            "HttpApi" => Some("local-http-api".into()),
            _ => self
                .table(target)
                .or_else(|| self.bucket(target))
                .or_else(|| self.secrets.get(target).map(String::as_str))
                .or_else(|| self.kms_keys.get(target).map(String::as_str))
                .or_else(|| self.queues.get(target).map(String::as_str))
                .map(str::to_owned)
                .or_else(|| self.template.parameter_value(target)),
        }
    }

    /// `!GetAtt <Resource>.Arn` of a resource the emulator does not hold (a role): an ARN of
    /// the local account, named after the resource.
    fn resolve_get_att(&self, target: &str) -> Option<String> {
        let (resource, attribute) = target.split_once('.')?;
        (attribute == "Arn" && self.template.has_resource(resource)).then(|| format!("arn:aws:iam::{LOCAL_ACCOUNT}:role/{resource}"))
    }

    /// `!Sub` with `${Name}` and `${Resource.Attribute}` placeholders.
    fn resolve_sub(&self, text: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').ok_or_else(|| format!("an unclosed ${{ in {text}"))? + start;
            let name = &rest[start + 2..end];
            let value = if name.contains('.') { self.resolve_get_att(name) } else { self.resolve_ref(name) };
            out.push_str(&value.ok_or_else(|| name.to_owned())?);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}
