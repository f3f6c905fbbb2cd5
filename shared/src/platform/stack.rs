//! Reads `template.yaml`, the single source of truth for tables and function wiring, so the test
//! harness and the local stack create exactly what CloudFormation would.
//!
//! Only the parts they need are read: `AWS::DynamoDB::Table` key schemas and indexes, and each
//! `AWS::Serverless::Function`'s binary and environment.

use std::collections::BTreeMap;
use std::path::Path;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType,
};
use serde_norway::Value;

use crate::platform::describe;

/// Why the template could not be read or applied.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("template.yaml: {0}")]
    Shape(String),
    #[error("creating table {table}: {message}")]
    Create { table: String, message: String },
}

/// One key element: attribute name and `HASH` or `RANGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyElement {
    pub attribute: String,
    pub key_type: String,
}

/// A global secondary index as the template declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDefinition {
    pub name: String,
    pub key_schema: Vec<KeyElement>,
    pub projection: String,
}

/// An `AWS::DynamoDB::Table` as the template declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDefinition {
    pub logical_id: String,
    /// Attribute name → `S`, `N` or `B`.
    pub attributes: BTreeMap<String, String>,
    pub key_schema: Vec<KeyElement>,
    pub indexes: Vec<IndexDefinition>,
}

impl TableDefinition {
    /// The attribute of the given key type (`HASH`/`RANGE`) in a key schema.
    pub fn key<'a>(schema: &'a [KeyElement], key_type: &str) -> Option<&'a str> {
        schema.iter().find(|k| k.key_type == key_type).map(|k| k.attribute.as_str())
    }
}

/// An environment variable's value in the template: a literal, `!Ref` to a resource or
/// parameter, `!Sub` of a string, or `!GetAtt <Resource>.<Attribute>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Literal(String),
    Ref(String),
    Sub(String),
    GetAtt(String),
    Other,
}

/// An `AWS::Serverless::Function` as the template declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionDefinition {
    pub logical_id: String,
    /// The cargo binary `sam build` builds for it (`Metadata.BuildProperties.Binary`).
    pub binary: Option<String>,
    /// The registry entry it runs (`Properties.Handler`, which Lambda hands the binary as
    /// `_HANDLER`).
    pub handler: Option<String>,
    pub environment: BTreeMap<String, EnvValue>,
    /// Its `HttpApi` events: (method, path), e.g. (`GET`, `/admin/devices/{thingName}`).
    pub http_routes: Vec<(String, String)>,
    /// Those of its `HttpApi` events that take no token (`Auth: {Authorizer: NONE}`).
    pub public_routes: Vec<(String, String)>,
    /// Its `S3` events: (bucket logical id, key prefix).
    pub s3_events: Vec<(String, String)>,
    /// Its `SQS` events: the queue's logical id.
    pub sqs_events: Vec<String>,
    /// Its `Schedule` events' expressions (`rate(1 minute)`).
    pub schedules: Vec<String>,
}

/// Where a topic rule's action sends what its SQL selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleTarget {
    /// A Lambda action: the function's logical id.
    Function(String),
    /// An SQS action: the queue's logical id.
    Queue(String),
}

/// An `AWS::IoT::TopicRule` with a Lambda or SQS action (the one its parameters choose, when
/// `Actions` is an `!If`).
#[derive(Debug, Clone)]
pub struct TopicRuleDefinition {
    /// `RuleName` (Basic Ingest addresses rules by it).
    pub name: String,
    pub sql: String,
    pub target: RuleTarget,
}

impl TopicRuleDefinition {
    /// The logical id of the function its Lambda action invokes, if that is its action.
    pub fn function(&self) -> Option<&str> {
        match &self.target {
            RuleTarget::Function(f) => Some(f),
            RuleTarget::Queue(_) => None,
        }
    }
}

impl TopicRuleDefinition {
    /// The topic filter of the SQL's `FROM '<filter>'`; none for Basic-Ingest-only rules.
    pub fn topic_filter(&self) -> Option<&str> {
        let lower = self.sql.to_ascii_lowercase();
        let at = lower.find(" from ")? + " from ".len();
        let rest = self.sql[at..].trim_start().strip_prefix('\'')?;
        rest.split('\'').next()
    }
}

/// A parsed `template.yaml`.
#[derive(Debug, Clone)]
pub struct Template {
    resources: serde_norway::Mapping,
    parameters: serde_norway::Mapping,
    conditions: serde_norway::Mapping,
    /// Parameter values given at deploy time (`--parameter-overrides`); the rest take their defaults.
    overrides: BTreeMap<String, String>,
}

fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    value.as_mapping().and_then(|m| m.get(name))
}

fn text(value: &Value, name: &str) -> Option<String> {
    field(value, name).and_then(Value::as_str).map(str::to_owned)
}

fn list<'a>(value: &'a Value, name: &str) -> &'a [Value] {
    field(value, name).and_then(Value::as_sequence).map(Vec::as_slice).unwrap_or(&[])
}

fn key_schema(value: &Value, owner: &str) -> Result<Vec<KeyElement>, StackError> {
    list(value, "KeySchema")
        .iter()
        .map(|k| match (text(k, "AttributeName"), text(k, "KeyType")) {
            (Some(attribute), Some(key_type)) => Ok(KeyElement { attribute, key_type }),
            _ => Err(StackError::Shape(format!("{owner}: KeySchema entries need AttributeName and KeyType"))),
        })
        .collect()
}

impl Template {
    /// Reads and parses a template file.
    pub fn load(path: &Path) -> Result<Self, StackError> {
        let read_err = |message: String| StackError::Read { path: path.display().to_string(), message };
        let body = std::fs::read_to_string(path).map_err(|e| read_err(e.to_string()))?;
        Self::parse(&body).map_err(|e| match e {
            StackError::Shape(m) => read_err(m),
            other => other,
        })
    }

    /// Parses template text (CloudFormation's `!Ref`-style tags are kept as tagged values).
    pub fn parse(body: &str) -> Result<Self, StackError> {
        let doc: Value = serde_norway::from_str(body).map_err(|e| StackError::Shape(e.to_string()))?;
        let resources = field(&doc, "Resources")
            .and_then(Value::as_mapping)
            .cloned()
            .ok_or_else(|| StackError::Shape("no Resources section".into()))?;
        let parameters = field(&doc, "Parameters").and_then(Value::as_mapping).cloned().unwrap_or_default();
        let conditions = field(&doc, "Conditions").and_then(Value::as_mapping).cloned().unwrap_or_default();
        Ok(Self { resources, parameters, conditions, overrides: BTreeMap::new() })
    }

    /// The template deployed with `name=value` (as `sam deploy --parameter-overrides`).
    pub fn with_parameter(mut self, name: &str, value: &str) -> Self {
        self.overrides.insert(name.to_owned(), value.to_owned());
        self
    }

    /// A parameter's value: as overridden, else its default.
    pub fn parameter_value(&self, name: &str) -> Option<String> {
        self.overrides.get(name).cloned().or_else(|| self.parameter_default(name))
    }

    /// Whether a condition of `Conditions` holds for the parameter values; `None` if it uses
    /// what is not evaluated here (only `!Equals`, `!Not`, `!And`, `!Or`, `!Condition` and
    /// `!Ref` to parameters are).
    pub fn condition(&self, name: &str) -> Option<bool> {
        self.holds(self.conditions.get(name)?)
    }

    fn holds(&self, value: &Value) -> Option<bool> {
        let Value::Tagged(t) = value else { return None };
        let args = t.value.as_sequence();
        if t.tag == "Equals" {
            let [a, b] = args?.as_slice() else { return None };
            Some(self.scalar(a)? == self.scalar(b)?)
        } else if t.tag == "Not" {
            Some(!self.holds(args?.first()?)?)
        } else if t.tag == "And" {
            args?.iter().map(|c| self.holds(c)).collect::<Option<Vec<_>>>().map(|all| all.iter().all(|c| *c))
        } else if t.tag == "Or" {
            args?.iter().map(|c| self.holds(c)).collect::<Option<Vec<_>>>().map(|all| all.iter().any(|c| *c))
        } else if t.tag == "Condition" {
            self.condition(t.value.as_str()?)
        } else {
            None
        }
    }

    /// A literal or a `!Ref` to a parameter, as text.
    fn scalar(&self, value: &Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Tagged(t) if t.tag == "Ref" => self.parameter_value(t.value.as_str()?),
            _ => None,
        }
    }

    /// `value`, or the branch an `!If [condition, then, else]` chooses.
    fn chosen<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        match value {
            Value::Tagged(t) if t.tag == "If" => {
                let [condition, then, otherwise] = t.value.as_sequence()?.as_slice() else { return None };
                let branch = if self.condition(condition.as_str()?)? { then } else { otherwise };
                self.chosen(branch)
            }
            other => Some(other),
        }
    }

    /// Whether the template declares a resource of this logical id.
    pub fn has_resource(&self, logical_id: &str) -> bool {
        self.resources.contains_key(logical_id)
    }

    /// A parameter's `Default`, as text.
    pub fn parameter_default(&self, name: &str) -> Option<String> {
        match field(self.parameters.get(name)?, "Default")? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    fn resources_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (String, &'a Value)> + 'a {
        self.resources.iter().filter_map(move |(id, r)| {
            let id = id.as_str()?;
            (text(r, "Type").as_deref() == Some(kind)).then(|| (id.to_owned(), r))
        })
    }

    /// Every DynamoDB table, in template order.
    pub fn tables(&self) -> Result<Vec<TableDefinition>, StackError> {
        self.resources_of("AWS::DynamoDB::Table")
            .map(|(logical_id, resource)| {
                let props = field(resource, "Properties")
                    .ok_or_else(|| StackError::Shape(format!("{logical_id} has no Properties")))?;
                let attributes = list(props, "AttributeDefinitions")
                    .iter()
                    .map(|a| match (text(a, "AttributeName"), text(a, "AttributeType")) {
                        (Some(n), Some(t)) => Ok((n, t)),
                        _ => Err(StackError::Shape(format!("{logical_id}: bad AttributeDefinitions entry"))),
                    })
                    .collect::<Result<_, _>>()?;
                let indexes = list(props, "GlobalSecondaryIndexes")
                    .iter()
                    .map(|i| {
                        let name = text(i, "IndexName")
                            .ok_or_else(|| StackError::Shape(format!("{logical_id}: an index has no IndexName")))?;
                        let projection = field(i, "Projection")
                            .and_then(|p| text(p, "ProjectionType"))
                            .unwrap_or_else(|| "ALL".into());
                        Ok(IndexDefinition { key_schema: key_schema(i, &name)?, name, projection })
                    })
                    .collect::<Result<_, StackError>>()?;
                Ok(TableDefinition { key_schema: key_schema(props, &logical_id)?, logical_id, attributes, indexes })
            })
            .collect()
    }

    /// A resource's `Properties` as JSON (intrinsic-function tags become `{"!Tag": value}`).
    pub fn properties_json(&self, logical_id: &str) -> Option<serde_json::Value> {
        let resource = self.resources.get(logical_id)?;
        serde_json::to_value(field(resource, "Properties")?).ok()
    }

    /// Every `AWS::IoT::TopicRule`: its `RuleName` and what its action reaches: the function
    /// of a Lambda action (`!GetAtt <Function>.Arn`) or the queue of an SQS action (`!Ref`).
    pub fn topic_rules(&self) -> Vec<TopicRuleDefinition> {
        self.resources_of("AWS::IoT::TopicRule")
            .filter_map(|(_, r)| {
                let props = field(r, "Properties")?;
                let name = text(props, "RuleName")?;
                let payload = field(props, "TopicRulePayload")?;
                let actions = self.chosen(field(payload, "Actions")?)?.as_sequence()?;
                let target = actions.iter().find_map(|a| {
                    if let Some(lambda) = field(a, "Lambda") {
                        let function = tagged(field(lambda, "FunctionArn")?, "GetAtt")?;
                        return function.strip_suffix(".Arn").map(|f| RuleTarget::Function(f.to_owned()));
                    }
                    tagged(field(field(a, "Sqs")?, "QueueUrl")?, "Ref").map(RuleTarget::Queue)
                })?;
                Some(TopicRuleDefinition { name, sql: text(payload, "Sql").unwrap_or_default(), target })
            })
            .collect()
    }

    /// The logical id of the function behind the HTTP API's Lambda authorizer.
    pub fn http_authorizer_function(&self) -> Option<String> {
        self.resources_of("AWS::Serverless::HttpApi").find_map(|(_, api)| {
            let authorizers = field(field(field(api, "Properties")?, "Auth")?, "Authorizers")?.as_mapping()?;
            authorizers.values().find_map(|a| tagged(field(a, "FunctionArn")?, "GetAtt")?.strip_suffix(".Arn").map(str::to_owned))
        })
    }

    /// The logical id of the function behind the fleet-provisioning template's pre-provisioning hook.
    pub fn provisioning_hook_function(&self) -> Option<String> {
        self.resources_of("AWS::IoT::ProvisioningTemplate").find_map(|(_, t)| {
            let hook = field(field(t, "Properties")?, "PreProvisioningHook")?;
            tagged(field(hook, "TargetArn")?, "GetAtt")?.strip_suffix(".Arn").map(str::to_owned)
        })
    }

    /// The logical ids of every `AWS::S3::Bucket`.
    pub fn buckets(&self) -> Vec<String> {
        self.resources_of("AWS::S3::Bucket").map(|(id, _)| id).collect()
    }

    /// The logical ids of every `AWS::SQS::Queue`, each with whether it is a FIFO queue.
    pub fn queues(&self) -> Vec<(String, bool)> {
        self.resources_of("AWS::SQS::Queue").map(|(id, _)| id).map(|id| {
            let fifo = self.properties_json(&id).is_some_and(|p| p["FifoQueue"] == true);
            (id, fifo)
        }).collect()
    }

    /// The logical ids of every `AWS::KMS::Key`.
    pub fn kms_keys(&self) -> Vec<String> {
        self.resources_of("AWS::KMS::Key").map(|(id, _)| id).collect()
    }

    /// The address of every `AWS::SES::EmailIdentity` (a literal, or a parameter's default).
    pub fn email_identities(&self) -> Vec<String> {
        self.resources_of("AWS::SES::EmailIdentity")
            .filter_map(|(_, resource)| {
                let identity = field(field(resource, "Properties")?, "EmailIdentity")?;
                tagged(identity, "Ref").and_then(|p| self.parameter_value(&p)).or_else(|| identity.as_str().map(str::to_owned))
            })
            .collect()
    }

    /// The logical ids of every `AWS::SecretsManager::Secret`.
    pub fn secrets(&self) -> Vec<String> {
        self.resources_of("AWS::SecretsManager::Secret").map(|(id, _)| id).collect()
    }

    /// Every serverless function, in template order.
    pub fn functions(&self) -> Vec<FunctionDefinition> {
        self.resources_of("AWS::Serverless::Function")
            .map(|(logical_id, resource)| {
                let binary = field(resource, "Metadata")
                    .and_then(|m| field(m, "BuildProperties"))
                    .and_then(|b| text(b, "Binary"));
                let handler = field(resource, "Properties").and_then(|p| text(p, "Handler"));
                let environment = field(resource, "Properties")
                    .and_then(|p| field(p, "Environment"))
                    .and_then(|e| field(e, "Variables"))
                    .and_then(Value::as_mapping)
                    .map(|vars| {
                        vars.iter()
                            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), env_value(v))))
                            .collect()
                    })
                    .unwrap_or_default();
                let events: Vec<&Value> = field(resource, "Properties")
                    .and_then(|p| field(p, "Events"))
                    .and_then(Value::as_mapping)
                    .map(|events| events.values().collect())
                    .unwrap_or_default();
                let of_type = |kind: &'static str| events.iter().copied().filter(move |e| text(e, "Type").as_deref() == Some(kind));
                let route = |e: &Value| {
                    let props = field(e, "Properties")?;
                    Some((text(props, "Method")?.to_uppercase(), text(props, "Path")?))
                };
                let public = |e: &Value| field(e, "Properties").and_then(|p| field(p, "Auth")).and_then(|a| text(a, "Authorizer")).as_deref() == Some("NONE");
                let http_routes = of_type("HttpApi").filter_map(route).collect();
                let public_routes = of_type("HttpApi").filter(|e| public(e)).filter_map(route).collect();
                let s3_events = of_type("S3")
                    .filter_map(|e| {
                        let props = field(e, "Properties")?;
                        let bucket = tagged(field(props, "Bucket")?, "Ref")?;
                        let prefix = list(field(field(props, "Filter")?, "S3Key")?, "Rules")
                            .iter()
                            .find(|r| text(r, "Name").as_deref() == Some("prefix"))
                            .and_then(|r| text(r, "Value"))?;
                        Some((bucket, prefix))
                    })
                    .collect();
                let sqs_events = of_type("SQS").filter_map(|e| tagged(field(field(e, "Properties")?, "Queue")?, "GetAtt").map(|q| q.trim_end_matches(".Arn").to_owned())).collect();
                let schedules = of_type("Schedule").filter_map(|e| text(field(e, "Properties")?, "Schedule")).collect();
                FunctionDefinition { logical_id, binary, handler, environment, http_routes, public_routes, s3_events, sqs_events, schedules }
            })
            .collect()
    }
}

/// The target of an intrinsic-function tag (`!Ref X`, `!GetAtt X.Arn`).
fn tagged(value: &Value, tag: &str) -> Option<String> {
    match value {
        Value::Tagged(t) if t.tag == tag => t.value.as_str().map(str::to_owned),
        _ => None,
    }
}

fn env_value(value: &Value) -> EnvValue {
    match value {
        Value::String(s) => EnvValue::Literal(s.clone()),
        Value::Number(n) => EnvValue::Literal(n.to_string()),
        Value::Bool(b) => EnvValue::Literal(b.to_string()),
        Value::Tagged(t) if t.tag == "Ref" => t.value.as_str().map_or(EnvValue::Other, |r| EnvValue::Ref(r.to_owned())),
        Value::Tagged(t) if t.tag == "Sub" => t.value.as_str().map_or(EnvValue::Other, |r| EnvValue::Sub(r.to_owned())),
        Value::Tagged(t) if t.tag == "GetAtt" => t.value.as_str().map_or(EnvValue::Other, |r| EnvValue::GetAtt(r.to_owned())),
        Value::Mapping(m) => match m.get("Ref").and_then(Value::as_str) {
            Some(r) => EnvValue::Ref(r.to_owned()),
            None => EnvValue::Other,
        },
        _ => EnvValue::Other,
    }
}

fn key_elements(schema: &[KeyElement]) -> Result<Vec<KeySchemaElement>, String> {
    schema
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.attribute)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// Creates a table from its template definition under the given physical name.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table: &TableDefinition,
    physical_name: &str,
) -> Result<(), StackError> {
    let fail = |message: String| StackError::Create { table: physical_name.to_owned(), message };
    let attributes = table
        .attributes
        .iter()
        .map(|(name, kind)| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    let indexes = table
        .indexes
        .iter()
        .map(|i| {
            GlobalSecondaryIndex::builder()
                .index_name(&i.name)
                .set_key_schema(Some(key_elements(&i.key_schema)?))
                .projection(Projection::builder().projection_type(ProjectionType::from(i.projection.as_str())).build())
                .build()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    client
        .create_table()
        .table_name(physical_name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(key_elements(&table.key_schema).map_err(fail)?))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .send()
        .await
        .map_err(|e| fail(describe(&e)))?;
    Ok(())
}
