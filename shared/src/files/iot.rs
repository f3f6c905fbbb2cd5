//! [`DevicePublisher`] through the IoT data plane.

use serde_json::Value;

use super::DevicePublisher;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// Publishes with the IoT data-plane `Publish` (QoS 1).
#[derive(Debug, Clone)]
pub struct IotDataPublisher {
    client: aws_sdk_iotdataplane::Client,
}

impl IotDataPublisher {
    pub fn new(client: aws_sdk_iotdataplane::Client) -> Self {
        Self { client }
    }
}

impl FromWiring for IotDataPublisher {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.iot_data()))
    }
}

impl DevicePublisher for IotDataPublisher {
    async fn publish(&self, topic: &str, payload: &Value) -> Result<(), StoreError> {
        self.client
            .publish()
            .topic(topic)
            .qos(1)
            .payload(aws_sdk_iotdataplane::primitives::Blob::new(payload.to_string().into_bytes()))
            .send()
            .await
            .map_err(|e| StoreError::sdk("publish to device", &e))?;
        Ok(())
    }
}
