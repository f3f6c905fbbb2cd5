//! The alert flow's [`Notifier`] on AWS: SNS for SMS, SES for email.

use super::alerting::{NotifyFailure, Notifier};
use crate::care::Channel;
use crate::wiring::{FromWiring, Wiring, WiringError};

/// SMS through SNS `Publish` to a phone number; email through SES v2 `SendEmail` from the
/// stack's sender address.
#[derive(Debug, Clone)]
pub struct AwsNotifier {
    sns: aws_sdk_sns::Client,
    ses: aws_sdk_sesv2::Client,
    from_address: String,
}

impl AwsNotifier {
    pub fn new(sns: aws_sdk_sns::Client, ses: aws_sdk_sesv2::Client, from_address: impl Into<String>) -> Self {
        Self { sns, ses, from_address: from_address.into() }
    }
}

impl FromWiring for AwsNotifier {
    /// `NOTIFICATION_FROM_ADDRESS`: the SES identity email is sent from.
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.sns(), w.aws.ses(), w.settings.required("NOTIFICATION_FROM_ADDRESS")?))
    }
}

/// The provider's reason, without the request (which holds the address and the text).
fn reason<E: aws_sdk_sns::error::ProvideErrorMetadata>(e: &E) -> NotifyFailure {
    NotifyFailure(format!("{}: {}", e.code().unwrap_or("error"), e.message().unwrap_or("the provider refused the notification")))
}

impl Notifier for AwsNotifier {
    async fn send(&self, channel: Channel, to: &str, subject: &str, body: &str) -> Result<String, NotifyFailure> {
        match channel {
            Channel::Sms => {
                // Transactional: delivered with priority, also to numbers that opted out of
                // promotional messages.
                let kind = aws_sdk_sns::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("Transactional")
                    .build()
                    .map_err(|e| NotifyFailure(e.to_string()))?;
                let out = self.sns.publish().phone_number(to).message(body).message_attributes("AWS.SNS.SMS.SMSType", kind).send().await.map_err(|e| reason(&e))?;
                Ok(out.message_id().unwrap_or_default().to_owned())
            }
            Channel::Email => {
                use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
                let text = |t: &str| Content::builder().data(t).charset("UTF-8").build().map_err(|e| NotifyFailure(e.to_string()));
                let message = Message::builder().subject(text(subject)?).body(Body::builder().text(text(body)?).build()).build();
                let out = self
                    .ses
                    .send_email()
                    .from_email_address(&self.from_address)
                    .destination(Destination::builder().to_addresses(to).build())
                    .content(EmailContent::builder().simple(message).build())
                    .send()
                    .await
                    .map_err(|e| reason(&e))?;
                Ok(out.message_id().unwrap_or_default().to_owned())
            }
        }
    }
}
