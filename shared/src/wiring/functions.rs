//! The registry: every Lambda function of the platform, its trigger, its handler, and the AWS
//! adapters its dependencies are built from. The [`BUNDLES`] group them into the binaries
//! deployed, each running the entry its function's `_HANDLER` names; [`all`] lists every one for
//! the local platform and the tests.
//!
//! To add a function: write its handler in its domain, add its entry here and to one bundle,
//! its resource (`Handler` = its name, `Binary` = its bundle's, environment, least-privilege
//! policy, event) to `template.yaml`, and its route to `docs/openapi.yaml` if it has one.
//! `tests/registry.rs` fails until the template and the registry agree.

use std::convert::Infallible;

use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use aws_lambda_events::s3::S3Event;
use aws_lambda_events::sqs::SqsEvent;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{event, http, Bundle, FunctionSpec, Route, Trigger};
use crate::access::authorizer::{self, AuthorizerDeps};
use crate::access::dynamodb::{DynamoActivityLog, DynamoApiKeyStore, DynamoAuditLog};
use crate::access::http::ApiKeyAdminDeps;
use crate::access::secrets::SecretsManagerPepper;
use crate::activation::http::ActivationDeps;
use crate::activation::DynamoActivationStore;
use crate::care::http::CareDeps;
use crate::care::DynamoCareStore;
use crate::clinical::alerting::FlowDeps;
use crate::clinical::aws::AwsNotifier;
use crate::clinical::http::AlertDeps;
use crate::clinical::DynamoAlertStore;
use crate::connectors::consumer::ConsumerDeps;
use crate::connectors::mqtt::{ConnectorPublish, MqttDeps};
use crate::connectors::http::{ErrorDeps, KeyDeps, ReceiveDeps, ShowKeyDeps};
use crate::connectors::{DynamoConnectorStore, KmsKeyCipher, SqsMessageQueue};
use crate::dead_letters::DynamoDeadLetterStore;
use crate::devices::http::StatusDeps as DeviceStatusDeps;
use crate::devices::provisioning::{self, HookDeps, HookRequest};
use crate::devices::{DynamoDeviceRegistry, IotCertificateControl};
use crate::files::registration::{self, RegistrationDeps};
use crate::files::{self, DynamoUploadStore, IotDataPublisher, S3UploadedObjects, S3UploadSigner, UploadLinkDeps};
use crate::firmware::http::{DeploymentDeps, FirmwareDeps, JobDeps};
use crate::firmware::job_events::{self, JobEventDeps};
use crate::firmware::{DynamoDeploymentStore, DynamoFirmwareStore, IotJobControl};
use crate::ingest::http::{StatusDeps, VitalsDeps};
use crate::messages::http::{DevelopmentDeps, DropDataDeps, MessageDeps};
use crate::messages::DynamoMessageStore;
use crate::ingest::inbox::{self, DynamoInboxProgress, InboxDeps, S3Inbox, SqsInboxContinuation};
use crate::ingest::rule::{self, IngestDeps};
use crate::fhir_api::http::{FhirPatientDeps, FhirReadDeps};
use crate::observations::http::DeviceReadDeps;
use crate::observations::DynamoObservationStore;
use crate::patients::{DynamoEncounterStore, DynamoPatientStore};
use crate::platform::http::HttpAnswer;
use crate::platform::metrics::MetricSink;

/// Wraps a route function `(Request, &Deps) -> impl HttpAnswer` as a registry route.
macro_rules! route {
    ($handler:path) => {
        |request, deps| Box::pin(async move { HttpAnswer::into_response($handler(request, deps).await) })
    };
}

type Devices = DynamoDeviceRegistry;
type Vitals = VitalsDeps<Devices, DynamoObservationStore, DynamoAlertStore, DynamoApiKeyStore, DynamoActivityLog, DynamoDeadLetterStore>;
type ApiKeyAdmin = ApiKeyAdminDeps<Devices, DynamoApiKeyStore, SecretsManagerPepper>;
type Messages = MessageDeps<DynamoMessageStore, DynamoAuditLog>;
type Activations = ActivationDeps<DynamoActivationStore, SecretsManagerPepper, DynamoAuditLog>;
type Care = CareDeps<DynamoCareStore, DynamoAuditLog>;
type Jobs = JobDeps<DynamoDeploymentStore, IotJobControl>;
type ConnectorConsumer =
    ConsumerDeps<DynamoConnectorStore, Devices, DynamoPatientStore, DynamoEncounterStore, DynamoObservationStore, DynamoAlertStore, DynamoDeadLetterStore, MetricSink>;

/// The trigger of one HTTP API route.
macro_rules! one {
    ($method:literal, $path:literal) => {
        Trigger::Http(&[Route { method: $method, path: $path }])
    };
}

// ---------------------------------------------------------------- devices

pub static PROVISIONING_HOOK: FunctionSpec = FunctionSpec {
    name: "provisioning-hook",
    trigger: Trigger::ProvisioningHook,
    build: |w| {
        event::<HookDeps<Devices, IotCertificateControl, DynamoDeadLetterStore>, HookRequest, _, _>(w, |request, deps| Box::pin(async move { provisioning::handle(&request, deps).await }))
    },
};

pub static ADMIN_DEVICES_REGISTER: FunctionSpec = FunctionSpec {
    name: "admin-devices-register",
    trigger: one!("POST", "/admin/devices"),
    build: |w| http::<Devices>(w, route!(crate::devices::http::register)),
};

pub static ADMIN_DEVICES_LIST: FunctionSpec = FunctionSpec {
    name: "admin-devices-list",
    trigger: one!("GET", "/admin/devices"),
    build: |w| http::<Devices>(w, route!(crate::devices::http::list)),
};

pub static ADMIN_DEVICES_GET: FunctionSpec = FunctionSpec {
    name: "admin-devices-get",
    trigger: one!("GET", "/admin/devices/{thingName}"),
    build: |w| http::<Devices>(w, route!(crate::devices::http::get)),
};

pub static ADMIN_DEVICES_ASSIGN: FunctionSpec = FunctionSpec {
    name: "admin-devices-assign",
    trigger: one!("PUT", "/admin/devices/{thingName}/patient"),
    build: |w| http::<Devices>(w, route!(crate::devices::http::assign_patient)),
};

pub static ADMIN_DEVICES_UNASSIGN: FunctionSpec = FunctionSpec {
    name: "admin-devices-unassign",
    trigger: one!("DELETE", "/admin/devices/{thingName}/patient"),
    build: |w| http::<Devices>(w, route!(crate::devices::http::unassign_patient)),
};

pub static ADMIN_DEVICES_STATUS: FunctionSpec = FunctionSpec {
    name: "admin-devices-status",
    trigger: one!("PUT", "/admin/devices/{thingName}/status"),
    build: |w| http::<DeviceStatusDeps<Devices, IotCertificateControl>>(w, route!(crate::devices::http::set_status)),
};

pub static ADMIN_DEAD_LETTERS: FunctionSpec = FunctionSpec {
    name: "admin-dead-letters",
    trigger: one!("GET", "/admin/dead-letters"),
    build: |w| http::<DynamoDeadLetterStore>(w, route!(crate::dead_letters::http::list)),
};

// ---------------------------------------------------------------- readings

type Ingest = IngestDeps<Devices, DynamoObservationStore, DynamoAlertStore, DynamoDeadLetterStore>;

pub static FHIR_INGEST: FunctionSpec = FunctionSpec {
    name: "fhir-ingest",
    trigger: Trigger::IotRule("FHIRIngest"),
    build: |w| event::<Ingest, Box<RawValue>, _, _>(w, |e, deps| Box::pin(async move { rule::handle(&e, deps).await })),
};

/// The `FHIRIngest` rule's events queued in batches (the template's `IngestPath=queue`).
pub static FHIR_INGEST_QUEUE: FunctionSpec = FunctionSpec {
    name: "fhir-ingest-queue",
    trigger: Trigger::Sqs { queue: "IngestQueue" },
    build: |w| event::<Ingest, SqsEvent, _, _>(w, |e, deps| Box::pin(async move { rule::handle_queued(e, deps).await })),
};

pub static IOT_VITALS: FunctionSpec = FunctionSpec {
    name: "iot-vitals",
    trigger: Trigger::Http(&[Route { method: "POST", path: "/api/iot/vitals" }, Route { method: "POST", path: "/api/iot/vitals/" }]),
    build: |w| http::<Vitals>(w, route!(crate::ingest::http::submit)),
};

pub static IOT_VITALS_BATCH: FunctionSpec = FunctionSpec {
    name: "iot-vitals-batch",
    trigger: Trigger::Http(&[
        Route { method: "POST", path: "/api/iot/vitals/batch" },
        Route { method: "POST", path: "/api/iot/vitals/batch/" },
    ]),
    build: |w| http::<Vitals>(w, route!(crate::ingest::http::submit_batch)),
};

pub static IOT_STATUS: FunctionSpec = FunctionSpec {
    name: "iot-status",
    trigger: Trigger::Http(&[Route { method: "GET", path: "/api/iot/status" }, Route { method: "GET", path: "/api/iot/status/" }]),
    build: |w| {
        http::<StatusDeps<Devices, DynamoObservationStore, DynamoApiKeyStore, DynamoActivityLog>>(w, route!(crate::ingest::http::status))
    },
};

type Inbox = InboxDeps<S3Inbox, Devices, DynamoObservationStore, DynamoAlertStore, DynamoDeadLetterStore, DynamoInboxProgress, SqsInboxContinuation>;

pub static INBOX_PROCESSOR: FunctionSpec = FunctionSpec {
    name: "inbox-processor",
    trigger: Trigger::S3ObjectCreated { bucket: "InboxBucket", prefix: inbox::INBOX_PREFIX },
    build: |w| event::<Inbox, S3Event, _, _>(w, |e, deps| Box::pin(async move { inbox::handle(&e, deps).await })),
};

pub static INBOX_CONTINUE: FunctionSpec = FunctionSpec {
    name: "inbox-continue",
    trigger: Trigger::Sqs { queue: "InboxFilesQueue" },
    build: |w| event::<Inbox, SqsEvent, _, _>(w, |e, deps| Box::pin(async move { inbox::handle_continued(e, deps).await })),
};

pub static ADMIN_INBOX_FILES: FunctionSpec = FunctionSpec {
    name: "admin-inbox-files",
    trigger: Trigger::Http(&[Route { method: "GET", path: "/admin/inbox/files" }, Route { method: "GET", path: "/admin/inbox/files/{fileId}" }]),
    build: |w| http::<DynamoInboxProgress>(w, route!(crate::ingest::inbox::http::files)),
};

pub static DEVICE_OBSERVATIONS: FunctionSpec = FunctionSpec {
    name: "device-observations",
    trigger: one!("GET", "/devices/{thingName}/observations"),
    build: |w| http::<DeviceReadDeps<Devices, DynamoObservationStore, DynamoAuditLog, DynamoCareStore>>(w, route!(crate::observations::http::device_observations)),
};

// ---------------------------------------------------------------- the FHIR API

pub static FHIR_METADATA: FunctionSpec = FunctionSpec {
    name: "fhir-metadata",
    trigger: Trigger::PublicHttp(&[Route { method: "GET", path: "/fhir/metadata" }]),
    build: |w| http::<()>(w, route!(crate::fhir_api::http::metadata)),
};

type FhirRead = FhirReadDeps<DynamoObservationStore, DynamoAuditLog, DynamoCareStore>;

pub static FHIR_OBSERVATION_READ: FunctionSpec = FunctionSpec {
    name: "fhir-observation-read",
    trigger: one!("GET", "/fhir/Observation/{id}"),
    build: |w| http::<FhirRead>(w, route!(crate::fhir_api::http::read_observation)),
};

pub static FHIR_OBSERVATION_SEARCH: FunctionSpec = FunctionSpec {
    name: "fhir-observation-search",
    trigger: one!("GET", "/fhir/Observation"),
    build: |w| http::<FhirRead>(w, route!(crate::fhir_api::http::search_observations)),
};

pub static FHIR_PATIENT_READ: FunctionSpec = FunctionSpec {
    name: "fhir-patient-read",
    trigger: one!("GET", "/fhir/Patient/{id}"),
    build: |w| http::<FhirPatientDeps<DynamoPatientStore, DynamoObservationStore, DynamoAuditLog, DynamoCareStore>>(w, route!(crate::fhir_api::http::read_patient)),
};

pub static FHIR_DEVICE_READ: FunctionSpec = FunctionSpec {
    name: "fhir-device-read",
    trigger: one!("GET", "/fhir/Device/{id}"),
    build: |w| http::<FhirReadDeps<Devices, DynamoAuditLog, DynamoCareStore>>(w, route!(crate::fhir_api::http::read_device)),
};

pub static FHIR_DOCUMENT_READ: FunctionSpec = FunctionSpec {
    name: "fhir-document-read",
    trigger: one!("GET", "/fhir/DocumentReference/{id}"),
    build: |w| http::<FhirReadDeps<DynamoUploadStore, DynamoAuditLog, DynamoCareStore>>(w, route!(crate::fhir_api::http::read_document)),
};

// ---------------------------------------------------------------- alerts

pub static PATIENT_ALERTS: FunctionSpec = FunctionSpec {
    name: "patient-alerts",
    trigger: one!("GET", "/patients/{patientId}/alerts"),
    build: |w| http::<AlertDeps<DynamoAlertStore, DynamoAuditLog, DynamoCareStore>>(w, route!(crate::clinical::http::list)),
};

type Alerts = AlertDeps<DynamoAlertStore, DynamoAuditLog, DynamoCareStore>;

pub static PATIENT_ALERTS_CLOSE: FunctionSpec = FunctionSpec {
    name: "patient-alerts-close",
    trigger: Trigger::Http(&[
        Route { method: "POST", path: "/patients/{patientId}/alerts/{alertId}/close" },
        Route { method: "POST", path: "/patients/{patientId}/alerts/{alertId}/resolve" },
    ]),
    build: |w| http::<Alerts>(w, route!(crate::clinical::http::close)),
};

pub static PATIENT_ALERTS_ACKNOWLEDGE: FunctionSpec = FunctionSpec {
    name: "patient-alerts-acknowledge",
    trigger: one!("POST", "/patients/{patientId}/alerts/{alertId}/acknowledge"),
    build: |w| http::<Alerts>(w, route!(crate::clinical::http::acknowledge)),
};

pub static PATIENT_ALERTS_ANSWER: FunctionSpec = FunctionSpec {
    name: "patient-alerts-answer",
    trigger: one!("POST", "/patients/{patientId}/alerts/{alertId}/answer"),
    build: |w| http::<Alerts>(w, route!(crate::clinical::http::answer)),
};

pub static PATIENT_ALERTS_HISTORY: FunctionSpec = FunctionSpec {
    name: "patient-alerts-history",
    trigger: one!("GET", "/patients/{patientId}/alerts/{alertId}/history"),
    build: |w| http::<Alerts>(w, route!(crate::clinical::http::history)),
};

pub static CLINICIAN_WORKLIST: FunctionSpec = FunctionSpec {
    name: "clinician-worklist",
    trigger: one!("GET", "/worklist"),
    build: |w| http::<Alerts>(w, route!(crate::clinical::http::worklist)),
};

pub static ALERT_ANSWER_PAGE: FunctionSpec = FunctionSpec {
    name: "alert-answer-page",
    trigger: Trigger::PublicHttp(&[Route { method: "GET", path: "/alerts/answer/{token}" }]),
    build: |w| http::<Alerts>(w, route!(crate::clinical::http::answer_page)),
};

pub static ALERT_ANSWER_LINK: FunctionSpec = FunctionSpec {
    name: "alert-answer-link",
    trigger: Trigger::PublicHttp(&[Route { method: "POST", path: "/alerts/answer/{token}" }]),
    build: |w| http::<Alerts>(w, route!(crate::clinical::http::answer_by_link)),
};

pub static ALERT_SWEEP: FunctionSpec = FunctionSpec {
    name: "alert-sweep",
    trigger: Trigger::Schedule("rate(1 minute)"),
    build: |w| {
        event::<FlowDeps<DynamoAlertStore, DynamoCareStore, DynamoMessageStore, AwsNotifier>, Value, _, _>(w, |_, deps| {
            Box::pin(async move { crate::clinical::alerting::sweep(deps).await })
        })
    },
};

// ---------------------------------------------------------------- files

pub static UPLOAD_LINK: FunctionSpec = FunctionSpec {
    name: "upload-link",
    trigger: Trigger::IotRule("CreateFileUploadLink"),
    build: |w| {
        event::<UploadLinkDeps<S3UploadSigner, IotDataPublisher, DynamoUploadStore, DynamoDeadLetterStore>, Value, _, _>(w, |e, deps| {
            Box::pin(async move { files::handle(&e, deps).await })
        })
    },
};

pub static UPLOAD_REGISTERED: FunctionSpec = FunctionSpec {
    name: "upload-registered",
    trigger: Trigger::S3ObjectCreated { bucket: "DeviceFilesBucket", prefix: "uploads/" },
    build: |w| {
        event::<RegistrationDeps<DynamoUploadStore, S3UploadedObjects, Devices, DynamoDeadLetterStore>, S3Event, _, _>(w, |e, deps| {
            Box::pin(async move { registration::handle(&e, deps).await })
        })
    },
};

pub static DEVICE_DOCUMENTS: FunctionSpec = FunctionSpec {
    name: "device-documents",
    trigger: one!("GET", "/devices/{thingName}/documents"),
    build: |w| http::<DeviceReadDeps<Devices, DynamoUploadStore, DynamoAuditLog, DynamoCareStore>>(w, route!(crate::files::http::device_documents)),
};

// ---------------------------------------------------------------- firmware

pub static ADMIN_FIRMWARE_REGISTER: FunctionSpec = FunctionSpec {
    name: "admin-firmware-register",
    trigger: one!("POST", "/admin/firmware"),
    build: |w| http::<FirmwareDeps<DynamoFirmwareStore, S3UploadSigner>>(w, route!(crate::firmware::http::register)),
};

pub static ADMIN_FIRMWARE_LIST: FunctionSpec = FunctionSpec {
    name: "admin-firmware-list",
    trigger: one!("GET", "/admin/firmware"),
    build: |w| http::<DynamoFirmwareStore>(w, route!(crate::firmware::http::list)),
};

pub static ADMIN_DEPLOYMENTS_CREATE: FunctionSpec = FunctionSpec {
    name: "admin-deployments-create",
    trigger: one!("POST", "/admin/firmware/deployments"),
    build: |w| {
        http::<DeploymentDeps<DynamoFirmwareStore, Devices, DynamoDeploymentStore, IotJobControl>>(w, route!(crate::firmware::http::create))
    },
};

pub static ADMIN_DEPLOYMENTS_LIST: FunctionSpec = FunctionSpec {
    name: "admin-deployments-list",
    trigger: one!("GET", "/admin/firmware/deployments"),
    build: |w| http::<DynamoDeploymentStore>(w, route!(crate::firmware::http::list_deployments)),
};

pub static ADMIN_DEPLOYMENTS_GET: FunctionSpec = FunctionSpec {
    name: "admin-deployments-get",
    trigger: one!("GET", "/admin/firmware/deployments/{deploymentId}"),
    build: |w| http::<Jobs>(w, route!(crate::firmware::http::get)),
};

pub static ADMIN_DEPLOYMENTS_CANCEL: FunctionSpec = FunctionSpec {
    name: "admin-deployments-cancel",
    trigger: one!("POST", "/admin/firmware/deployments/{deploymentId}/cancel"),
    build: |w| http::<Jobs>(w, route!(crate::firmware::http::cancel)),
};

pub static JOB_EVENTS: FunctionSpec = FunctionSpec {
    name: "job-events",
    trigger: Trigger::IotRule("VitalwireJobExecutionEvents"),
    build: |w| {
        event::<JobEventDeps<DynamoDeploymentStore, Devices, DynamoDeadLetterStore>, Value, _, _>(w, |e, deps| {
            Box::pin(async move { job_events::handle(&e, deps).await })
        })
    },
};

// ---------------------------------------------------------------- access

pub static AUTHORIZER: FunctionSpec = FunctionSpec {
    name: "authorizer",
    trigger: Trigger::HttpAuthorizer,
    build: |w| {
        event::<AuthorizerDeps<DynamoApiKeyStore, SecretsManagerPepper, DynamoCareStore>, ApiGatewayV2CustomAuthorizerV2Request, _, Infallible>(w, |e, deps| {
            Box::pin(async move { Ok(authorizer::handle(&e, deps).await) })
        })
    },
};

pub static ADMIN_API_KEYS_CREATE: FunctionSpec = FunctionSpec {
    name: "admin-api-keys-create",
    trigger: one!("POST", "/admin/devices/{thingName}/api-keys"),
    build: |w| http::<ApiKeyAdmin>(w, route!(crate::access::http::create)),
};

pub static ADMIN_API_KEYS_LIST: FunctionSpec = FunctionSpec {
    name: "admin-api-keys-list",
    trigger: one!("GET", "/admin/devices/{thingName}/api-keys"),
    build: |w| http::<ApiKeyAdmin>(w, route!(crate::access::http::list)),
};

pub static ADMIN_API_KEYS_REVOKE: FunctionSpec = FunctionSpec {
    name: "admin-api-keys-revoke",
    trigger: one!("DELETE", "/admin/devices/{thingName}/api-keys/{keyId}"),
    build: |w| http::<ApiKeyAdmin>(w, route!(crate::access::http::revoke)),
};

pub static ADMIN_DEVICES_ACTIVITY: FunctionSpec = FunctionSpec {
    name: "admin-devices-activity",
    trigger: one!("GET", "/admin/devices/{thingName}/activity"),
    build: |w| http::<DynamoActivityLog>(w, route!(crate::access::http::activity)),
};

pub static ADMIN_PATIENT_AUDIT: FunctionSpec = FunctionSpec {
    name: "admin-patient-audit",
    trigger: one!("GET", "/admin/patients/{patientId}/audit"),
    build: |w| http::<DynamoAuditLog>(w, route!(crate::access::http::patient_audit)),
};

// ---------------------------------------------------------------- IoMT connectors

pub static CONNECTORS_LIST: FunctionSpec = FunctionSpec {
    name: "connectors-list",
    trigger: one!("GET", "/connectors"),
    build: |w| http::<DynamoConnectorStore>(w, route!(crate::connectors::http::list)),
};

pub static CONNECTORS_GET: FunctionSpec = FunctionSpec {
    name: "connectors-get",
    trigger: one!("GET", "/connectors/{connectorName}"),
    build: |w| http::<DynamoConnectorStore>(w, route!(crate::connectors::http::get)),
};

pub static CONNECTORS_PUT: FunctionSpec = FunctionSpec {
    name: "connectors-put",
    trigger: one!("PUT", "/connectors/{connectorName}"),
    build: |w| http::<DynamoConnectorStore>(w, route!(crate::connectors::http::put)),
};

pub static CONNECTORS_DELETE: FunctionSpec = FunctionSpec {
    name: "connectors-delete",
    trigger: one!("DELETE", "/connectors/{connectorName}"),
    build: |w| http::<DynamoConnectorStore>(w, route!(crate::connectors::http::delete)),
};

type Keys = KeyDeps<DynamoConnectorStore, SecretsManagerPepper, KmsKeyCipher>;

pub static CONNECTIONS_LIST: FunctionSpec = FunctionSpec {
    name: "connections-list",
    trigger: one!("GET", "/connectors/{connectorName}/connections"),
    build: |w| http::<DynamoConnectorStore>(w, route!(crate::connectors::http::list_connections)),
};

pub static CONNECTIONS_GET: FunctionSpec = FunctionSpec {
    name: "connections-get",
    trigger: one!("GET", "/connectors/{connectorName}/connections/{connectionName}"),
    build: |w| http::<DynamoConnectorStore>(w, route!(crate::connectors::http::get_connection)),
};

pub static CONNECTIONS_PUT: FunctionSpec = FunctionSpec {
    name: "connections-put",
    trigger: one!("PUT", "/connectors/{connectorName}/connections/{connectionName}"),
    build: |w| http::<Keys>(w, route!(crate::connectors::http::put_connection)),
};

pub static CONNECTIONS_DELETE: FunctionSpec = FunctionSpec {
    name: "connections-delete",
    trigger: one!("DELETE", "/connectors/{connectorName}/connections/{connectionName}"),
    build: |w| http::<DynamoConnectorStore>(w, route!(crate::connectors::http::delete_connection)),
};

pub static CONNECTIONS_LIST_KEYS: FunctionSpec = FunctionSpec {
    name: "connections-list-keys",
    trigger: one!("POST", "/connectors/{connectorName}/connections/{connectionName}/listKeys"),
    build: |w| http::<ShowKeyDeps<DynamoConnectorStore, KmsKeyCipher>>(w, route!(crate::connectors::http::list_keys)),
};

pub static CONNECTIONS_REGENERATE_KEY: FunctionSpec = FunctionSpec {
    name: "connections-regenerate-key",
    trigger: one!("POST", "/connectors/{connectorName}/connections/{connectionName}/regenerateKey"),
    build: |w| http::<Keys>(w, route!(crate::connectors::http::regenerate_key)),
};

pub static MAPPINGS_LIST: FunctionSpec = FunctionSpec {
    name: "mappings-list",
    trigger: one!("GET", "/connectors/{connectorName}/mappings"),
    build: |w| http::<DynamoConnectorStore>(w, route!(crate::connectors::http::list_mappings)),
};

pub static MAPPINGS_GET: FunctionSpec = FunctionSpec {
    name: "mappings-get",
    trigger: one!("GET", "/connectors/{connectorName}/mappings/{mappingKind}"),
    build: |w| http::<DynamoConnectorStore>(w, route!(crate::connectors::http::get_mapping)),
};

pub static MAPPINGS_PUT: FunctionSpec = FunctionSpec {
    name: "mappings-put",
    trigger: one!("PUT", "/connectors/{connectorName}/mappings/{mappingKind}"),
    build: |w| http::<DynamoConnectorStore>(w, route!(crate::connectors::http::put_mapping)),
};

pub static MAPPINGS_DELETE: FunctionSpec = FunctionSpec {
    name: "mappings-delete",
    trigger: one!("DELETE", "/connectors/{connectorName}/mappings/{mappingKind}"),
    build: |w| http::<DynamoConnectorStore>(w, route!(crate::connectors::http::delete_mapping)),
};

pub static MAPPINGS_DEBUG: FunctionSpec = FunctionSpec {
    name: "mappings-debug",
    trigger: one!("POST", "/connectors/{connectorName}/mappings/debug"),
    build: |w| http::<DynamoConnectorStore>(w, route!(crate::connectors::http::debug_mappings)),
};

pub static CONNECTOR_MESSAGES_RECEIVE: FunctionSpec = FunctionSpec {
    name: "connector-messages-receive",
    trigger: one!("POST", "/connectors/{connectorName}/messages"),
    build: |w| {
        http::<ReceiveDeps<DynamoConnectorStore, SecretsManagerPepper, SqsMessageQueue, DynamoDeadLetterStore>>(w, route!(crate::connectors::http::receive_messages))
    },
};

pub static CONNECTOR_ERRORS: FunctionSpec = FunctionSpec {
    name: "connector-errors",
    trigger: one!("GET", "/connectors/{connectorName}/errors"),
    build: |w| http::<ErrorDeps<DynamoConnectorStore, DynamoDeadLetterStore>>(w, route!(crate::connectors::http::list_errors)),
};

pub static CONNECTOR_MESSAGES: FunctionSpec = FunctionSpec {
    name: "connector-messages",
    trigger: Trigger::Sqs { queue: "ConnectorMessagesQueue" },
    build: |w| {
        event::<ConnectorConsumer, SqsEvent, _, _>(w, |e, deps| Box::pin(async move { deps.handle(e).await }))
    },
};

pub static CONNECTOR_MQTT: FunctionSpec = FunctionSpec {
    name: "connector-mqtt",
    trigger: Trigger::IotRule("VitalwireConnectorMessages"),
    build: |w| {
        event::<MqttDeps<DynamoConnectorStore, SqsMessageQueue, DynamoDeadLetterStore>, ConnectorPublish, _, _>(w, |e, deps| {
            Box::pin(async move { crate::connectors::mqtt::handle(&e, deps).await })
        })
    },
};

pub static ADMIN_ENCOUNTERS_REGISTER: FunctionSpec = FunctionSpec {
    name: "admin-encounters-register",
    trigger: one!("POST", "/admin/patients/{patientId}/encounters"),
    build: |w| http::<DynamoEncounterStore>(w, route!(crate::patients::http::register_encounter)),
};

// ---------------------------------------------------------------- messages (Polaris messages API)

/// A message route: the message deps, then `$handler` of `messages::http`.
macro_rules! message_route {
    ($name:literal, $method:literal, $path:literal, $handler:ident) => {
        FunctionSpec { name: $name, trigger: one!($method, $path), build: |w| http::<Messages>(w, route!(crate::messages::http::$handler)) }
    };
}

pub static MESSAGES_CREATE_V1: FunctionSpec = message_route!("messages-create-v1", "POST", "/dhos/v1/message", create_v1);
pub static MESSAGES_CREATE: FunctionSpec = message_route!("messages-create", "POST", "/dhos/v2/message", create);
pub static MESSAGES_GET: FunctionSpec = message_route!("messages-get", "GET", "/dhos/v1/message/{message_id}", get);
pub static MESSAGES_UPDATE: FunctionSpec = message_route!("messages-update", "PATCH", "/dhos/v1/message/{message_id}", update);
pub static MESSAGES_SENT: FunctionSpec = message_route!("messages-sent", "GET", "/dhos/v1/sender/{sender_id}/message", sent);
pub static MESSAGES_RECEIVED: FunctionSpec = message_route!("messages-received", "GET", "/dhos/v1/receiver/{receiver_id}/message", received);
pub static MESSAGES_SENT_ACTIVE: FunctionSpec = message_route!("messages-sent-active", "GET", "/dhos/v1/sender/{sender_id}/active/message", sent_active);
pub static MESSAGES_RECEIVED_ACTIVE: FunctionSpec =
    message_route!("messages-received-active", "GET", "/dhos/v1/receiver/{receiver_id}/active/message", received_active);
pub static MESSAGES_RECEIVED_CALLBACKS: FunctionSpec =
    message_route!("messages-received-callbacks", "GET", "/dhos/v1/receiver/{receiver_id}/active/callback/message", received_open_callbacks);
pub static MESSAGES_SENT_OR_RECEIVED: FunctionSpec =
    message_route!("messages-sent-or-received", "GET", "/dhos/v1/sender_or_receiver/{unique_id}/message", sent_or_received);
pub static MESSAGES_BETWEEN: FunctionSpec = message_route!("messages-between", "GET", "/dhos/v1/sender/{sender_id}/receiver/{receiver_id}/message", between);
pub static MESSAGES_BETWEEN_ACTIVE: FunctionSpec =
    message_route!("messages-between-active", "GET", "/dhos/v1/sender/{sender_id}/receiver/{receiver_id}/active/message", between_active);
pub static MESSAGES_OPEN_CALLBACKS: FunctionSpec = message_route!("messages-open-callbacks", "POST", "/dhos/v1/active/callback/message", open_callbacks);

pub static SCORES_NEWS2: FunctionSpec = FunctionSpec {
    name: "scores-news2",
    trigger: one!("POST", "/scores/news2"),
    build: |w| http::<()>(w, route!(crate::clinical::http::score_news2)),
};

type Sets = crate::clinical::http::SetDeps<DynamoObservationStore, DynamoAlertStore, DynamoCareStore, DynamoAuditLog, DynamoDeadLetterStore>;

pub static PATIENT_OBSERVATION_SETS: FunctionSpec = FunctionSpec {
    name: "patient-observation-sets",
    trigger: one!("POST", "/patients/{patientId}/observation-sets"),
    build: |w| http::<Sets>(w, route!(crate::clinical::http::submit_set)),
};

pub static SERVICE_RUNNING: FunctionSpec = FunctionSpec {
    name: "service-running",
    trigger: Trigger::PublicHttp(&[Route { method: "GET", path: "/running" }]),
    build: |w| http::<()>(w, route!(crate::messages::http::running)),
};

pub static SERVICE_VERSION: FunctionSpec = FunctionSpec {
    name: "service-version",
    trigger: Trigger::PublicHttp(&[Route { method: "GET", path: "/version" }]),
    build: |w| http::<()>(w, route!(crate::messages::http::version)),
};

pub static MESSAGES_DROP_DATA: FunctionSpec = FunctionSpec {
    name: "messages-drop-data",
    trigger: one!("POST", "/drop_data"),
    build: |w| http::<DropDataDeps<DynamoMessageStore, DynamoActivationStore>>(w, route!(crate::messages::http::drop_data)),
};

pub static MESSAGES_CREATE_BATCH: FunctionSpec = FunctionSpec {
    name: "messages-create-batch",
    trigger: one!("POST", "/create_messages"),
    build: |w| http::<DevelopmentDeps<DynamoMessageStore>>(w, route!(crate::messages::http::create_batch)),
};

// ---------------------------------------------------------------- activation (Polaris activation API)

pub static ACTIVATION_CREATE: FunctionSpec = FunctionSpec {
    name: "activation-create",
    trigger: one!("POST", "/dhos/v1/patient/{patient_id}/activation"),
    build: |w| http::<Activations>(w, route!(crate::activation::http::create)),
};

pub static ACTIVATION_LIST: FunctionSpec = FunctionSpec {
    name: "activation-list",
    trigger: one!("GET", "/dhos/v1/patient/{patient_id}/activation"),
    build: |w| http::<Activations>(w, route!(crate::activation::http::list)),
};

pub static ACTIVATION_VALIDATE: FunctionSpec = FunctionSpec {
    name: "activation-validate",
    trigger: Trigger::PublicHttp(&[Route { method: "POST", path: "/dhos/v1/activation/{activation_code}" }]),
    build: |w| http::<Activations>(w, route!(crate::activation::http::validate)),
};

pub static ACTIVATION_PATIENT_JWT: FunctionSpec = FunctionSpec {
    name: "activation-patient-jwt",
    trigger: Trigger::PublicHttp(&[Route { method: "GET", path: "/dhos/v1/patient/{patient_id}/jwt" }]),
    build: |w| http::<Activations>(w, route!(crate::activation::http::patient_jwt)),
};

pub static ENTRY_DEVICE_CREATE: FunctionSpec = FunctionSpec {
    name: "entry-device-create",
    trigger: one!("POST", "/dhos/v1/device"),
    build: |w| http::<Activations>(w, route!(crate::activation::http::devices::create)),
};

pub static ENTRY_DEVICE_LIST: FunctionSpec = FunctionSpec {
    name: "entry-device-list",
    trigger: one!("GET", "/dhos/v1/device"),
    build: |w| http::<Activations>(w, route!(crate::activation::http::devices::list)),
};

pub static ENTRY_DEVICE_GET: FunctionSpec = FunctionSpec {
    name: "entry-device-get",
    trigger: one!("GET", "/dhos/v1/device/{device_id}"),
    build: |w| http::<Activations>(w, route!(crate::activation::http::devices::get)),
};

pub static ENTRY_DEVICE_UPDATE: FunctionSpec = FunctionSpec {
    name: "entry-device-update",
    trigger: one!("PATCH", "/dhos/v1/device/{device_id}"),
    build: |w| http::<Activations>(w, route!(crate::activation::http::devices::update)),
};

pub static ENTRY_DEVICE_ACTIVATION_CREATE: FunctionSpec = FunctionSpec {
    name: "entry-device-activation-create",
    trigger: one!("POST", "/dhos/v1/device/{device_id}/activation"),
    build: |w| http::<Activations>(w, route!(crate::activation::http::devices::create_activation)),
};

pub static ENTRY_DEVICE_JWT: FunctionSpec = FunctionSpec {
    name: "entry-device-jwt",
    trigger: Trigger::PublicHttp(&[Route { method: "GET", path: "/dhos/v1/device/{device_id}/jwt" }]),
    build: |w| http::<Activations>(w, route!(crate::activation::http::devices::device_jwt)),
};

pub static CLINICIAN_LOGIN_CREATE: FunctionSpec = FunctionSpec {
    name: "clinician-login-create",
    trigger: one!("POST", "/dhos/v1/clinician"),
    build: |w| http::<Activations>(w, route!(crate::activation::http::clinicians::create)),
};

pub static CLINICIAN_LOGIN_UPDATE: FunctionSpec = FunctionSpec {
    name: "clinician-login-update",
    trigger: one!("PATCH", "/dhos/v1/clinician/{clinician_id}"),
    build: |w| http::<Activations>(w, route!(crate::activation::http::clinicians::update)),
};

pub static CLINICIAN_JWT: FunctionSpec = FunctionSpec {
    name: "clinician-jwt",
    trigger: one!("GET", "/dhos/v1/clinician/jwt"),
    build: |w| http::<Activations>(w, route!(crate::activation::http::clinicians::clinician_jwt)),
};

pub static POLARIS_JWKS: FunctionSpec = FunctionSpec {
    name: "polaris-jwks",
    trigger: Trigger::PublicHttp(&[Route { method: "GET", path: "/.well-known/jwks.json" }]),
    build: |w| http::<Activations>(w, route!(crate::activation::http::jwks)),
};

// ---------------------------------------------------------------- care teams

pub static ADMIN_CLINICIANS_PUT: FunctionSpec = FunctionSpec {
    name: "admin-clinicians-put",
    trigger: one!("PUT", "/admin/clinicians/{clinicianId}"),
    build: |w| http::<Care>(w, route!(crate::care::http::put_clinician)),
};

pub static ADMIN_CLINICIANS_LIST: FunctionSpec = FunctionSpec {
    name: "admin-clinicians-list",
    trigger: one!("GET", "/admin/clinicians"),
    build: |w| http::<Care>(w, route!(crate::care::http::list_clinicians)),
};

pub static ADMIN_CLINICIANS_GET: FunctionSpec = FunctionSpec {
    name: "admin-clinicians-get",
    trigger: one!("GET", "/admin/clinicians/{clinicianId}"),
    build: |w| http::<Care>(w, route!(crate::care::http::get_clinician)),
};

pub static ADMIN_LOCATIONS_PUT: FunctionSpec = FunctionSpec {
    name: "admin-locations-put",
    trigger: one!("PUT", "/admin/locations/{locationId}"),
    build: |w| http::<Care>(w, route!(crate::care::http::put_location)),
};

pub static ADMIN_LOCATIONS_LIST: FunctionSpec = FunctionSpec {
    name: "admin-locations-list",
    trigger: one!("GET", "/admin/locations"),
    build: |w| http::<Care>(w, route!(crate::care::http::list_locations)),
};

pub static ADMIN_LOCATIONS_GET: FunctionSpec = FunctionSpec {
    name: "admin-locations-get",
    trigger: one!("GET", "/admin/locations/{locationId}"),
    build: |w| http::<Care>(w, route!(crate::care::http::get_location)),
};

pub static ADMIN_CARE_TEAM_PUT: FunctionSpec = FunctionSpec {
    name: "admin-care-team-put",
    trigger: one!("PUT", "/admin/patients/{patientId}/care-team"),
    build: |w| http::<Care>(w, route!(crate::care::http::put_care_team)),
};

pub static ADMIN_CARE_TEAM_GET: FunctionSpec = FunctionSpec {
    name: "admin-care-team-get",
    trigger: one!("GET", "/admin/patients/{patientId}/care-team"),
    build: |w| http::<Care>(w, route!(crate::care::http::get_care_team)),
};

pub static PATIENT_SETTINGS_PUT: FunctionSpec = FunctionSpec {
    name: "patient-settings-put",
    trigger: one!("PUT", "/patients/{patientId}/settings"),
    build: |w| http::<Care>(w, route!(crate::care::http::put_settings)),
};

pub static PATIENT_SETTINGS_GET: FunctionSpec = FunctionSpec {
    name: "patient-settings-get",
    trigger: one!("GET", "/patients/{patientId}/settings"),
    build: |w| http::<Care>(w, route!(crate::care::http::get_settings)),
};

/// Every function of the platform: those of every bundle, each in exactly one.
pub fn all() -> impl Iterator<Item = &'static FunctionSpec> {
    BUNDLES.iter().flat_map(|bundle| bundle.functions.iter().copied())
}

/// The function of this name.
pub fn by_name(name: &str) -> Option<&'static FunctionSpec> {
    all().find(|f| f.name == name)
}

// ---------------------------------------------------------------- bundles
// Each function is in exactly one bundle (`tests/registry.rs`). A bundle's binary links only the
// entries listed here, so these lists decide what each package holds.

/// Readings filed as they arrive (the `FHIRIngest` rule, its queued path, the gateways' IoT
/// rules), the alert sweep, and the authorizer every API request passes: the paths a reading or
/// a request waits on, kept in the smallest binary.
pub static INGEST_BUNDLE: Bundle = Bundle {
    binary: "vitalwire-lambda-ingest",
    functions: &[
        &FHIR_INGEST,
        &FHIR_INGEST_QUEUE,
        &IOT_VITALS,
        &IOT_VITALS_BATCH,
        &IOT_STATUS,
        &ALERT_SWEEP,
        &AUTHORIZER,
    ],
};

/// A device's life beyond its readings: provisioning, file uploads, the inbox of reading files,
/// firmware job events.
pub static DEVICES_BUNDLE: Bundle = Bundle {
    binary: "vitalwire-lambda-devices",
    functions: &[
        &PROVISIONING_HOOK,
        &UPLOAD_LINK,
        &UPLOAD_REGISTERED,
        &INBOX_PROCESSOR,
        &INBOX_CONTINUE,
        &JOB_EVENTS,
    ],
};

/// The IoMT connectors: receiving (HTTPS, MQTT), the queue's consumer with the mapping engine, and
/// their management (connectors, connections, mappings, errors).
pub static CONNECTORS_BUNDLE: Bundle = Bundle {
    binary: "vitalwire-lambda-connectors",
    functions: &[
        &CONNECTOR_MESSAGES_RECEIVE,
        &CONNECTOR_MESSAGES,
        &CONNECTOR_MQTT,
        &CONNECTORS_LIST,
        &CONNECTORS_GET,
        &CONNECTORS_PUT,
        &CONNECTORS_DELETE,
        &CONNECTIONS_LIST,
        &CONNECTIONS_GET,
        &CONNECTIONS_PUT,
        &CONNECTIONS_DELETE,
        &CONNECTIONS_LIST_KEYS,
        &CONNECTIONS_REGENERATE_KEY,
        &MAPPINGS_LIST,
        &MAPPINGS_GET,
        &MAPPINGS_PUT,
        &MAPPINGS_DELETE,
        &MAPPINGS_DEBUG,
        &CONNECTOR_ERRORS,
    ],
};

/// What clinicians, patients and their apps read and answer: the FHIR API, alerts and the
/// worklist, a device's readings and documents, scores, patient settings.
pub static CLINICAL_BUNDLE: Bundle = Bundle {
    binary: "vitalwire-lambda-clinical",
    functions: &[
        &DEVICE_OBSERVATIONS,
        &DEVICE_DOCUMENTS,
        &FHIR_METADATA,
        &FHIR_OBSERVATION_READ,
        &FHIR_OBSERVATION_SEARCH,
        &FHIR_PATIENT_READ,
        &FHIR_DEVICE_READ,
        &FHIR_DOCUMENT_READ,
        &PATIENT_ALERTS,
        &PATIENT_ALERTS_CLOSE,
        &PATIENT_ALERTS_ACKNOWLEDGE,
        &PATIENT_ALERTS_ANSWER,
        &PATIENT_ALERTS_HISTORY,
        &CLINICIAN_WORKLIST,
        &ALERT_ANSWER_PAGE,
        &ALERT_ANSWER_LINK,
        &SCORES_NEWS2,
        &PATIENT_OBSERVATION_SETS,
        &PATIENT_SETTINGS_PUT,
        &PATIENT_SETTINGS_GET,
    ],
};

/// The operators' API: devices, dead letters, inbox files, firmware, API keys, audit,
/// encounters, clinicians, locations, care teams.
pub static ADMIN_BUNDLE: Bundle = Bundle {
    binary: "vitalwire-lambda-admin",
    functions: &[
        &ADMIN_DEVICES_REGISTER,
        &ADMIN_DEVICES_LIST,
        &ADMIN_DEVICES_GET,
        &ADMIN_DEVICES_ASSIGN,
        &ADMIN_DEVICES_UNASSIGN,
        &ADMIN_DEVICES_STATUS,
        &ADMIN_DEVICES_ACTIVITY,
        &ADMIN_DEAD_LETTERS,
        &ADMIN_INBOX_FILES,
        &ADMIN_FIRMWARE_REGISTER,
        &ADMIN_FIRMWARE_LIST,
        &ADMIN_DEPLOYMENTS_CREATE,
        &ADMIN_DEPLOYMENTS_LIST,
        &ADMIN_DEPLOYMENTS_GET,
        &ADMIN_DEPLOYMENTS_CANCEL,
        &ADMIN_API_KEYS_CREATE,
        &ADMIN_API_KEYS_LIST,
        &ADMIN_API_KEYS_REVOKE,
        &ADMIN_PATIENT_AUDIT,
        &ADMIN_ENCOUNTERS_REGISTER,
        &ADMIN_CLINICIANS_PUT,
        &ADMIN_CLINICIANS_LIST,
        &ADMIN_CLINICIANS_GET,
        &ADMIN_LOCATIONS_PUT,
        &ADMIN_LOCATIONS_LIST,
        &ADMIN_LOCATIONS_GET,
        &ADMIN_CARE_TEAM_PUT,
        &ADMIN_CARE_TEAM_GET,
    ],
};

/// The Polaris-compatible services: messages, activations, device entries, clinician logins
/// and their tokens, and the service routes.
pub static POLARIS_BUNDLE: Bundle = Bundle {
    binary: "vitalwire-lambda-polaris",
    functions: &[
        &MESSAGES_CREATE_V1,
        &MESSAGES_CREATE,
        &MESSAGES_GET,
        &MESSAGES_UPDATE,
        &MESSAGES_SENT,
        &MESSAGES_RECEIVED,
        &MESSAGES_SENT_ACTIVE,
        &MESSAGES_RECEIVED_ACTIVE,
        &MESSAGES_RECEIVED_CALLBACKS,
        &MESSAGES_SENT_OR_RECEIVED,
        &MESSAGES_BETWEEN,
        &MESSAGES_BETWEEN_ACTIVE,
        &MESSAGES_OPEN_CALLBACKS,
        &MESSAGES_DROP_DATA,
        &MESSAGES_CREATE_BATCH,
        &SERVICE_RUNNING,
        &SERVICE_VERSION,
        &ACTIVATION_CREATE,
        &ACTIVATION_LIST,
        &ACTIVATION_VALIDATE,
        &ACTIVATION_PATIENT_JWT,
        &ENTRY_DEVICE_CREATE,
        &ENTRY_DEVICE_LIST,
        &ENTRY_DEVICE_GET,
        &ENTRY_DEVICE_UPDATE,
        &ENTRY_DEVICE_ACTIVATION_CREATE,
        &ENTRY_DEVICE_JWT,
        &CLINICIAN_LOGIN_CREATE,
        &CLINICIAN_LOGIN_UPDATE,
        &CLINICIAN_JWT,
        &POLARIS_JWKS,
    ],
};

/// Every bundle.
pub static BUNDLES: &[&Bundle] = &[&INGEST_BUNDLE, &DEVICES_BUNDLE, &CONNECTORS_BUNDLE, &CLINICAL_BUNDLE, &ADMIN_BUNDLE, &POLARIS_BUNDLE];

/// The bundle that deploys the function of this name.
pub fn bundle_of(name: &str) -> Option<&'static Bundle> {
    BUNDLES.iter().copied().find(|b| b.function(name).is_some())
}
