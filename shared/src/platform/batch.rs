//! Partial batch failures for SQS consumers (Lambda's `ReportBatchItemFailures`): the
//! messages a batch could not handle yet are reported, and only they come back; the others
//! are deleted. Shared by every queue consumer (the connectors', the queued `FHIRIngest` path).
//!
//! In a FIFO queue the messages of a group must stay in order: once one fails, every later
//! message of its group in the batch is reported too, unhandled, so SQS delivers them again
//! behind it while the other groups go on. A standard queue has no groups, and one failure
//! holds back nothing else.

use std::collections::HashSet;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsMessage};

/// What a batch could not handle, as Lambda wants it answered.
#[derive(Debug, Default)]
pub struct BatchFailures {
    response: SqsBatchResponse,
    failed_groups: HashSet<String>,
}

impl BatchFailures {
    /// Whether `record` must wait for an earlier message of its FIFO group that failed in this
    /// batch; if so it is reported, and the caller skips it.
    pub fn waits(&mut self, record: &SqsMessage) -> bool {
        let waits = group(record).is_some_and(|g| self.failed_groups.contains(g));
        if waits {
            self.response.add_failure(record.message_id.clone().unwrap_or_default());
        }
        waits
    }

    /// Reports `record` (and, in a FIFO queue, holds back the rest of its group).
    pub fn fail(&mut self, record: &SqsMessage) {
        if let Some(g) = group(record) {
            self.failed_groups.insert(g.to_owned());
        }
        self.response.add_failure(record.message_id.clone().unwrap_or_default());
    }

    /// How many messages are reported.
    pub fn len(&self) -> usize {
        self.response.batch_item_failures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The answer for Lambda.
    pub fn into_response(self) -> SqsBatchResponse {
        self.response
    }
}

/// A FIFO message's group; none in a standard queue.
fn group(record: &SqsMessage) -> Option<&str> {
    record.attributes.get("MessageGroupId").map(String::as_str).filter(|g| !g.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, group: Option<&str>) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        if let Some(g) = group {
            m.attributes.insert("MessageGroupId".into(), g.into());
        }
        m
    }

    fn reported(failures: BatchFailures) -> Vec<String> {
        failures.into_response().batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
    }

    #[test]
    fn a_fifo_group_waits_behind_its_failed_message_and_other_groups_go_on() {
        let mut failures = BatchFailures::default();
        let batch = [message("1", Some("a")), message("2", Some("b")), message("3", Some("a")), message("4", Some("b"))];
        assert!(!failures.waits(&batch[0]));
        failures.fail(&batch[0]);
        assert!(!failures.waits(&batch[1]), "another group");
        assert!(failures.waits(&batch[2]), "behind message 1");
        assert!(!failures.waits(&batch[3]));
        assert_eq!(reported(failures), ["1", "3"]);
    }

    #[test]
    fn in_a_standard_queue_one_failure_holds_back_nothing_else() {
        let mut failures = BatchFailures::default();
        let batch = [message("1", None), message("2", None)];
        failures.fail(&batch[0]);
        assert!(!failures.waits(&batch[1]));
        assert_eq!(reported(failures), ["1"]);
    }
}
