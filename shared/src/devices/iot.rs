//! [`CertificateControl`] through the AWS IoT control plane.

use super::CertificateControl;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// Switches certificates with `UpdateCertificate`.
#[derive(Debug, Clone)]
pub struct IotCertificateControl {
    client: aws_sdk_iot::Client,
}

impl IotCertificateControl {
    pub fn new(client: aws_sdk_iot::Client) -> Self {
        Self { client }
    }
}

impl FromWiring for IotCertificateControl {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.iot()))
    }
}

impl CertificateControl for IotCertificateControl {
    async fn set_active(&self, certificate_id: &str, active: bool) -> Result<(), StoreError> {
        use aws_sdk_iot::types::CertificateStatus;
        let status = if active { CertificateStatus::Active } else { CertificateStatus::Inactive };
        self.client
            .update_certificate()
            .certificate_id(certificate_id)
            .new_status(status)
            .send()
            .await
            .map_err(|e| StoreError::sdk("update certificate", &e))?;
        Ok(())
    }

    async fn is_active(&self, certificate_id: &str) -> Result<bool, StoreError> {
        match self.client.describe_certificate().certificate_id(certificate_id).send().await {
            Ok(out) => Ok(out
                .certificate_description()
                .and_then(|d| d.status())
                .is_some_and(|s| *s == aws_sdk_iot::types::CertificateStatus::Active)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(false),
            Err(e) => Err(StoreError::sdk("describe certificate", &e)),
        }
    }
}
