//! The DynamoDB tables: key schemas the adapters rely on, and where each function finds a
//! table's name (an environment variable set from `template.yaml`).
//!
//! `template.yaml` is the source of truth for the tables; these specs are what the code assumes
//! of them, and a test fails when the two drift apart.

/// A global secondary index the adapters query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: &'static str,
    pub partition_key: &'static str,
    pub sort_key: Option<&'static str>,
}

/// What the code assumes of one table (all key attributes are strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    /// Logical id of the `AWS::DynamoDB::Table` in `template.yaml`.
    pub logical_id: &'static str,
    /// Environment variable that carries the table's physical name.
    pub env_var: &'static str,
    pub partition_key: &'static str,
    pub sort_key: Option<&'static str>,
    pub indexes: &'static [IndexSpec],
}

pub const DEVICES_BY_SERIAL_NUMBER: IndexSpec =
    IndexSpec { name: "bySerialNumber", partition_key: "serialKey", sort_key: None };
pub const DEVICES_BY_PATIENT: IndexSpec =
    IndexSpec { name: "byPatient", partition_key: "patientId", sort_key: Some("thingName") };

/// Devices, by thing name; by (manufacturer, serial number); by assigned patient.
pub const DEVICES: TableSpec = TableSpec {
    logical_id: "DevicesTable",
    env_var: "DEVICES_TABLE",
    partition_key: "thingName",
    sort_key: None,
    indexes: &[DEVICES_BY_SERIAL_NUMBER, DEVICES_BY_PATIENT],
};

pub const OBSERVATIONS_BY_PATIENT_CODE: IndexSpec =
    IndexSpec { name: "byPatientCode", partition_key: "patientCode", sort_key: Some("effectiveAt") };
pub const OBSERVATIONS_BY_PATIENT: IndexSpec =
    IndexSpec { name: "byPatient", partition_key: "patientId", sort_key: Some("effectiveAt") };
pub const OBSERVATIONS_BY_DEVICE: IndexSpec =
    IndexSpec { name: "byDevice", partition_key: "deviceId", sort_key: Some("effectiveAt") };

/// Observations, by id; by patient over time; by patient and code over time; by device over time.
pub const OBSERVATIONS: TableSpec = TableSpec {
    logical_id: "ObservationsTable",
    env_var: "OBSERVATIONS_TABLE",
    partition_key: "id",
    sort_key: None,
    indexes: &[OBSERVATIONS_BY_PATIENT, OBSERVATIONS_BY_PATIENT_CODE, OBSERVATIONS_BY_DEVICE],
};

pub const DEAD_LETTERS_BY_THING: IndexSpec =
    IndexSpec { name: "byThing", partition_key: "thingName", sort_key: Some("sortKey") };

/// Rejected messages, by source newest first; by thing.
pub const DEAD_LETTERS: TableSpec = TableSpec {
    logical_id: "DeadLettersTable",
    env_var: "DEAD_LETTERS_TABLE",
    partition_key: "source",
    sort_key: Some("sortKey"),
    indexes: &[DEAD_LETTERS_BY_THING],
};

pub const UPLOADS_BY_THING: IndexSpec = IndexSpec { name: "byThing", partition_key: "thingName", sort_key: Some("requestedAt") };
pub const UPLOADS_BY_DOCUMENT: IndexSpec = IndexSpec { name: "byDocument", partition_key: "documentId", sort_key: None };

/// Device file uploads, by object key; a device's uploads newest first; a completed upload by
/// its DocumentReference's id.
pub const UPLOADS: TableSpec = TableSpec {
    logical_id: "UploadsTable",
    env_var: "UPLOADS_TABLE",
    partition_key: "objectKey",
    sort_key: None,
    indexes: &[UPLOADS_BY_THING, UPLOADS_BY_DOCUMENT],
};

/// Firmware images, by id.
pub const FIRMWARE: TableSpec = TableSpec {
    logical_id: "FirmwareTable",
    env_var: "FIRMWARE_TABLE",
    partition_key: "firmwareId",
    sort_key: None,
    indexes: &[],
};

/// Deployment records newest first: only they carry `listKey` (a sparse index).
pub const DEPLOYMENTS_BY_CREATED: IndexSpec = IndexSpec { name: "byCreated", partition_key: "listKey", sort_key: Some("createdAt") };

/// Firmware deployments: the deployment (`sk = DEPLOYMENT`) and each device (`THING#<name>`).
pub const DEPLOYMENTS: TableSpec = TableSpec {
    logical_id: "DeploymentsTable",
    env_var: "DEPLOYMENTS_TABLE",
    partition_key: "deploymentId",
    sort_key: Some("sk"),
    indexes: &[DEPLOYMENTS_BY_CREATED],
};

pub const API_KEYS_BY_THING: IndexSpec = IndexSpec { name: "byThing", partition_key: "thingName", sort_key: Some("createdAt") };

/// Device API keys (hashes only), by key id; a device's keys newest first.
pub const API_KEYS: TableSpec = TableSpec {
    logical_id: "ApiKeysTable",
    env_var: "API_KEYS_TABLE",
    partition_key: "keyId",
    sort_key: None,
    indexes: &[API_KEYS_BY_THING],
};

/// Per-key request counters: `window` = `minute#<epoch minute>` (rate limit) or
/// `day#<YYYY-MM-DD>` (daily use), expired by TTL.
pub const API_KEY_USAGE: TableSpec = TableSpec {
    logical_id: "ApiKeyUsageTable",
    env_var: "API_KEY_USAGE_TABLE",
    partition_key: "keyId",
    sort_key: Some("window"),
    indexes: &[],
};

/// The vitals API's activity log: a device's requests, newest first, expired by TTL.
pub const ACTIVITY: TableSpec = TableSpec {
    logical_id: "ActivityTable",
    env_var: "ACTIVITY_TABLE",
    partition_key: "deviceId",
    sort_key: Some("sortKey"),
    indexes: &[],
};

/// Clinical alerts by patient (`sortKey` = `ALERT#<raisedAt>#<id>`), and the open-alert
/// markers that de-duplicate them (`OPEN#<kind>`).
pub const ALERTS: TableSpec = TableSpec {
    logical_id: "AlertsTable",
    env_var: "ALERTS_TABLE",
    partition_key: "patientId",
    sort_key: Some("sortKey"),
    indexes: &[ALERTS_BY_DUE],
};

/// Alert flows with work due (a deadline, a delivery to retry, a flow not started yet), soonest
/// first: sparse, only such flows carry `dueShard`. The per-minute sweep queries it.
pub const ALERTS_BY_DUE: IndexSpec = IndexSpec { name: "byDue", partition_key: "dueShard", sort_key: Some("dueAt") };

/// Who read which patient's data: a patient's records newest first (`sortKey` =
/// `<at>#<requestId>#<subject>`), expired by TTL.
pub const AUDIT: TableSpec = TableSpec {
    logical_id: "AuditTable",
    env_var: "AUDIT_TABLE",
    partition_key: "patientId",
    sort_key: Some("sortKey"),
    indexes: &[],
};

/// IoMT connectors, one partition each: the connector (`item = CONNECTOR`), its connections
/// and mappings.
pub const CONNECTORS: TableSpec = TableSpec {
    logical_id: "ConnectorsTable",
    env_var: "CONNECTORS_TABLE",
    partition_key: "connectorName",
    sort_key: Some("item"),
    indexes: &[],
};

/// Patient records, by id (those a connector created in `Create` mode).
pub const PATIENTS: TableSpec = TableSpec {
    logical_id: "PatientsTable",
    env_var: "PATIENTS_TABLE",
    partition_key: "patientId",
    sort_key: None,
    indexes: &[],
};

/// Encounters an operator registered, by id (derived from the identifier devices send).
pub const ENCOUNTERS: TableSpec = TableSpec {
    logical_id: "EncountersTable",
    env_var: "ENCOUNTERS_TABLE",
    partition_key: "encounterId",
    sort_key: None,
    indexes: &[],
};

pub const MESSAGES_BY_SENDER: IndexSpec = IndexSpec { name: "bySender", partition_key: "sender", sort_key: Some("createdAt") };
pub const MESSAGES_BY_RECEIVER: IndexSpec = IndexSpec { name: "byReceiver", partition_key: "receiver", sort_key: Some("createdAt") };

/// Clinician–patient messages, by uuid; a party's sent and received messages over time.
pub const MESSAGES: TableSpec = TableSpec {
    logical_id: "MessagesTable",
    env_var: "MESSAGES_TABLE",
    partition_key: "uuid",
    sort_key: None,
    indexes: &[MESSAGES_BY_SENDER, MESSAGES_BY_RECEIVER],
};

pub const ACTIVATIONS_COMPLETED: IndexSpec = IndexSpec { name: "byPatientCompleted", partition_key: "patientId", sort_key: Some("completedAt") };

pub const ENTRY_DEVICES_BY_LOCATION: IndexSpec = IndexSpec { name: "entryDevicesByLocation", partition_key: "listedIn", sort_key: Some("locationId") };
pub const CLINICIANS_BY_IDENTIFIER: IndexSpec = IndexSpec { name: "cliniciansBySendEntryIdentifier", partition_key: "sendEntryIdentifier", sort_key: None };

/// The Polaris activation API's records: `code#<code key>` items, one per activation of a
/// patient or ward tablet; `patient#<id>` and `device-credential#<uuid>` items, each one's
/// open activation and authorisation code; `entry-device#<uuid>` ward tablets;
/// `clinician#<id>` login records; `device-guesses#<hour>` counters of wrong device codes.
/// Sparse indexes: a patient's completed activations by time, the tablets by location, the
/// clinicians by SEND Entry identifier.
pub const ACTIVATIONS: TableSpec = TableSpec {
    logical_id: "ActivationsTable",
    env_var: "ACTIVATIONS_TABLE",
    partition_key: "pk",
    sort_key: None,
    indexes: &[ACTIVATIONS_COMPLETED, ENTRY_DEVICES_BY_LOCATION, CLINICIANS_BY_IDENTIFIER],
};

pub const CARE_TEAMS_BY_KIND: IndexSpec = IndexSpec { name: "byKind", partition_key: "kind", sort_key: Some("pk") };

/// Care teams: clinicians, locations with their members, each patient's team and clinical
/// settings (`pk` = `clinician#`, `location#`, `patient#<id>`; `sk` = `profile`, `member#<id>`,
/// `team`, `settings`); every clinician or location by kind (sparse: profiles only).
pub const CARE_TEAMS: TableSpec = TableSpec {
    logical_id: "CareTeamsTable",
    env_var: "CARE_TEAMS_TABLE",
    partition_key: "pk",
    sort_key: Some("sk"),
    indexes: &[CARE_TEAMS_BY_KIND],
};

pub const INBOX_FILES_BY_STATUS: IndexSpec = IndexSpec { name: "byStatus", partition_key: "status", sort_key: Some("statusSortKey") };

/// Inbox files' progress (`item` = `FILE`) and problems (`PROBLEM#<n>`) by file id; files by
/// status, most recently updated first (sparse: the `FILE` items only).
pub const INBOX_FILES: TableSpec = TableSpec {
    logical_id: "InboxFilesTable",
    env_var: "INBOX_FILES_TABLE",
    partition_key: "fileId",
    sort_key: Some("item"),
    indexes: &[INBOX_FILES_BY_STATUS],
};

/// Every table the platform uses.
pub const ALL: &[TableSpec] = &[
    DEVICES,
    OBSERVATIONS,
    DEAD_LETTERS,
    UPLOADS,
    FIRMWARE,
    DEPLOYMENTS,
    API_KEYS,
    API_KEY_USAGE,
    ACTIVITY,
    ALERTS,
    AUDIT,
    CONNECTORS,
    PATIENTS,
    ENCOUNTERS,
    MESSAGES,
    ACTIVATIONS,
    CARE_TEAMS,
    INBOX_FILES,
];
