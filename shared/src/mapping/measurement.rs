//! Normalized measurements in the connector's JSON shape (`Measurement.cs`), and the event
//! envelope device mappings read (`EventMessageJObjectConverter.cs`).
//!
//! ```json
//! {"Type":"heartrate","OccurrenceTimeUtc":"2019-02-01T22:46:01.875Z","IngestionTimeUtc":"2019-02-01T22:46:05.1Z",
//!  "DeviceId":"device123","PatientId":null,"EncounterId":null,"CorrelationId":null,
//!  "Properties":[{"Name":"hr","Value":"78"}]}
//! ```
//! Names are PascalCase, absent ids are `null` (not omitted), and property values are strings
//! in the order the template lists them; a name may repeat.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One normalized measurement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Measurement {
    /// The template's `typeName`.
    #[serde(rename = "Type")]
    pub type_name: String,
    pub occurrence_time_utc: String,
    pub ingestion_time_utc: Option<String>,
    pub device_id: String,
    pub patient_id: Option<String>,
    pub encounter_id: Option<String>,
    pub correlation_id: Option<String>,
    pub properties: Vec<MeasurementProperty>,
}

/// One value of a measurement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MeasurementProperty {
    pub name: String,
    pub value: String,
}

/// The envelope a device mapping reads: the device's JSON as `Body`, the message's application
/// properties as `Properties` and the transport's as `SystemProperties` (IoT Hub puts the device
/// id and the enqueued time there).
pub fn envelope(body: Value, properties: Value, system_properties: Value) -> Value {
    json!({"Body": body, "Properties": properties, "SystemProperties": system_properties})
}

/// Bare device JSON wrapped as a message with no properties (the debugger's `--wrap`).
pub fn wrap(body: Value) -> Value {
    envelope(body, json!({}), json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measurement_has_the_connectors_json_shape() {
        let m = Measurement {
            type_name: "heartrate".into(),
            occurrence_time_utc: "2019-02-01T22:46:01.875Z".into(),
            ingestion_time_utc: Some("2019-02-01T22:46:05.1Z".into()),
            device_id: "device123".into(),
            patient_id: None,
            encounter_id: None,
            correlation_id: None,
            properties: vec![MeasurementProperty { name: "hr".into(), value: "78".into() }],
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(
            text,
            r#"{"Type":"heartrate","OccurrenceTimeUtc":"2019-02-01T22:46:01.875Z","IngestionTimeUtc":"2019-02-01T22:46:05.1Z","DeviceId":"device123","PatientId":null,"EncounterId":null,"CorrelationId":null,"Properties":[{"Name":"hr","Value":"78"}]}"#
        );
        assert_eq!(serde_json::from_str::<Measurement>(&text).unwrap(), m);
    }

    #[test]
    fn bare_device_json_is_wrapped_as_a_message() {
        assert_eq!(wrap(json!({"hr": 78})), json!({"Body": {"hr": 78}, "Properties": {}, "SystemProperties": {}}));
    }
}
