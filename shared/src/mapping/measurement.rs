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

/// Why a body of messages is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: not valid JSON: {message}")]
pub struct NotJson {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The messages of a body: one JSON value, a JSON array of them, or NDJSON (one per line,
/// blank lines skipped). A BOM is ignored.
pub fn split_messages(text: &str) -> Result<Vec<Value>, NotJson> {
    let text = super::templates::without_bom(text);
    let located = |e: &serde_json::Error, line: usize| NotJson { line, column: e.column(), message: e.to_string().split(" at line ").next().unwrap_or_default().to_owned() };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(one) => Ok(vec![one]),
        Err(whole) => {
            let lines: Vec<(usize, &str)> = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).collect();
            // One value spread over lines is not NDJSON: its own error is the useful one.
            if lines.len() < 2 {
                return Err(located(&whole, whole.line()));
            }
            let mut values = Vec::with_capacity(lines.len());
            for (i, line) in lines {
                match serde_json::from_str(line) {
                    Ok(v) => values.push(v),
                    // The first line alone is not JSON: the text was meant as one value.
                    Err(_) if values.is_empty() => return Err(located(&whole, whole.line())),
                    Err(e) => return Err(located(&e, i + 1)),
                }
            }
            Ok(values)
        }
    }
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

    #[test]
    fn bodies_hold_one_message_an_array_or_ndjson() {
        assert_eq!(split_messages(r#"{"Body": {"hr": 1}}"#).unwrap().len(), 1);
        assert_eq!(split_messages("\u{feff}[{\"hr\": 1}, {\"hr\": 2}]").unwrap().len(), 2);
        assert_eq!(split_messages("{\"hr\": 1}\n\n{\"hr\": 2}\r\n").unwrap(), vec![json!({"hr": 1}), json!({"hr": 2})]);
        assert_eq!(split_messages("{\"hr\": 1}\n{\"hr\": }\n").unwrap_err().line, 2);
        assert_eq!(split_messages("{\"hr\": \n").unwrap_err().line, 2);
        assert_eq!(split_messages("").unwrap_err().line, 1);
    }
}
