//! [`InboxProgress`] in the `InboxFilesTable`: a `FILE` item per file version, saved over its
//! `version`; `PROBLEM#<n>` items beside it; index `byStatus` by status and `updatedAt#fileId`.
//! Everything expires [`RETENTION_DAYS`] after its last write (the file itself stays in S3).

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;

use super::progress::{FileProgress, FileStatus, InboxProgress, Problem, ProgressPage};
use super::scanner::Resume;
use crate::platform::dynamodb::{batch_write, expires_in_days, n, opt_s, opt_u64, put_opt, put_over_version, query_at_most, req_s, s, Item};
use crate::platform::tables::{INBOX_FILES, INBOX_FILES_BY_STATUS};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// Days a file's record and problems are kept after their last write.
pub const RETENTION_DAYS: i64 = 90;
const FILE_ITEM: &str = "FILE";

#[derive(Debug, Clone)]
pub struct DynamoInboxProgress {
    client: Client,
    table: String,
}

impl DynamoInboxProgress {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

impl FromWiring for DynamoInboxProgress {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.dynamodb(), w.table(&INBOX_FILES)?))
    }
}

/// A problem's sort key: numbered so that they sort in order.
fn problem_item(number: u64) -> String {
    format!("PROBLEM#{number:020}")
}

fn status_sort_key(p: &FileProgress) -> String {
    format!("{}#{}", p.updated_at, p.file_id)
}

fn to_item(p: &FileProgress) -> Item {
    let mut item = Item::from([
        ("fileId".to_owned(), s(&p.file_id)),
        ("item".to_owned(), s(FILE_ITEM)),
        ("bucket".to_owned(), s(&p.bucket)),
        ("key".to_owned(), s(&p.key)),
        ("arrivedAt".to_owned(), s(&p.arrived_at)),
        ("status".to_owned(), s(p.status.as_str())),
        ("statusSortKey".to_owned(), s(status_sort_key(p))),
        ("readings".to_owned(), n(p.readings)),
        ("stored".to_owned(), n(p.stored)),
        ("failed".to_owned(), n(p.failed)),
        ("problemsListed".to_owned(), n(p.problems_listed)),
        ("problemBase".to_owned(), n(p.problem_base)),
        ("resumeOffset".to_owned(), n(p.resume.offset)),
        ("resumeSkip".to_owned(), n(p.resume.skip)),
        ("runs".to_owned(), n(p.runs)),
        ("version".to_owned(), n(p.version_saved)),
        ("startedAt".to_owned(), s(&p.started_at)),
        ("updatedAt".to_owned(), s(&p.updated_at)),
        ("expiresAt".to_owned(), expires_in_days(RETENTION_DAYS)),
    ]);
    put_opt(&mut item, "objectVersion", p.version.as_deref());
    put_opt(&mut item, "movedTo", p.moved_to.as_deref());
    put_opt(&mut item, "report", p.report.as_deref());
    item
}

fn from_item(item: &Item) -> Result<FileProgress, StoreError> {
    const OP: &str = "read inbox file progress";
    let number = |name: &str| opt_u64(item, name).ok_or_else(|| StoreError::new(OP, format!("{name} is missing")));
    let status = req_s(item, "status", OP)?;
    Ok(FileProgress {
        file_id: req_s(item, "fileId", OP)?,
        bucket: req_s(item, "bucket", OP)?,
        key: req_s(item, "key", OP)?,
        version: opt_s(item, "objectVersion"),
        arrived_at: req_s(item, "arrivedAt", OP)?,
        status: FileStatus::parse(&status).ok_or_else(|| StoreError::new(OP, format!("unknown status {status}")))?,
        readings: number("readings")?,
        stored: number("stored")?,
        failed: number("failed")?,
        problems_listed: number("problemsListed")?,
        problem_base: number("problemBase")?,
        resume: Resume { offset: number("resumeOffset")?, skip: number("resumeSkip")? },
        runs: number("runs")?,
        version_saved: number("version")?,
        started_at: req_s(item, "startedAt", OP)?,
        updated_at: req_s(item, "updatedAt", OP)?,
        moved_to: opt_s(item, "movedTo"),
        report: opt_s(item, "report"),
    })
}

impl InboxProgress for DynamoInboxProgress {
    async fn start(&self, fresh: &FileProgress) -> Result<FileProgress, StoreError> {
        if put_over_version(&self.client, &self.table, to_item(fresh), 1, "fileId", "start inbox file progress").await? {
            return Ok(fresh.clone());
        }
        self.get(&fresh.file_id).await?.ok_or_else(|| StoreError::new("start inbox file progress", "the record was there and is gone"))
    }

    async fn get(&self, file_id: &str) -> Result<Option<FileProgress>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("fileId", s(file_id))
            .key("item", s(FILE_ITEM))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("read inbox file progress", &e))?;
        out.item.as_ref().map(from_item).transpose()
    }

    async fn save(&self, progress: &FileProgress, first_problem: u64, problems: &[Problem]) -> Result<bool, StoreError> {
        const OP: &str = "save inbox file progress";
        let mut requests = Vec::with_capacity(problems.len());
        for (number, problem) in (first_problem..).zip(problems) {
            let text = serde_json::to_string(problem).map_err(|e| StoreError::new(OP, e))?;
            let item = Item::from([
                ("fileId".to_owned(), s(&progress.file_id)),
                ("item".to_owned(), s(problem_item(number))),
                ("problem".to_owned(), s(text)),
                ("expiresAt".to_owned(), expires_in_days(RETENTION_DAYS)),
            ]);
            let put = PutRequest::builder().set_item(Some(item)).build().map_err(|e| StoreError::new(OP, e))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        batch_write(&self.client, &self.table, requests, OP).await?;
        put_over_version(&self.client, &self.table, to_item(progress), progress.version_saved, "fileId", OP).await
    }

    async fn problems(&self, file_id: &str, from: u64, limit: usize) -> Result<Vec<Problem>, StoreError> {
        const OP: &str = "read inbox file problems";
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("fileId = :f AND #item BETWEEN :from AND :to")
            .expression_attribute_names("#item", "item")
            .expression_attribute_values(":f", s(file_id))
            .expression_attribute_values(":from", s(problem_item(from)))
            .expression_attribute_values(":to", s(problem_item(u64::MAX)))
            // Pages no larger than what is asked for: DynamoDB reads (and bills) a page whole.
            .limit(i32::try_from(limit).unwrap_or(i32::MAX).clamp(1, 1000));
        query_at_most(query, OP, limit, |item| serde_json::from_str(&req_s(item, "problem", OP)?).map_err(|e| StoreError::new(OP, e))).await
    }

    async fn by_status(&self, status: FileStatus, limit: i32, after: Option<&str>) -> Result<ProgressPage, StoreError> {
        const OP: &str = "list inbox files";
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INBOX_FILES_BY_STATUS.name)
            .key_condition_expression("#status = :s")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":s", s(status.as_str()))
            .scan_index_forward(false)
            .limit(limit);
        // The cursor is the last item's `updatedAt#fileId`: its whole key, index and table.
        if let Some((after, file_id)) = after.and_then(|a| a.rsplit_once('#').map(|(_, id)| (a, id))) {
            query = query
                .exclusive_start_key("status", s(status.as_str()))
                .exclusive_start_key("statusSortKey", s(after))
                .exclusive_start_key("fileId", s(file_id))
                .exclusive_start_key("item", s(FILE_ITEM));
        }
        let out = query.send().await.map_err(|e| StoreError::sdk(OP, &e))?;
        let items = out.items().iter().map(from_item).collect::<Result<Vec<_>, _>>()?;
        let next = out.last_evaluated_key().and_then(|k| k.get("statusSortKey")).and_then(|v| v.as_s().ok()).cloned();
        Ok(ProgressPage { items, next })
    }
}
