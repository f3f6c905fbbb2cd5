//! `GET /admin/inbox/files?status=FILING|ARCHIVED|FAILED&limit=&next=` and
//! `GET /admin/inbox/files/{fileId}` (`admin-inbox-files`, role `admin`): where each inbox file
//! is, most recently updated first (`FILING` unless asked), and one file's record with its
//! problems (as many as its report lists).

use lambda_http::Request;
use serde_json::{json, Value};

use super::progress::{FileProgress, FileStatus, InboxProgress};
use super::MAX_REPORTED_ERRORS;
use crate::access::{require, Role};
use crate::platform::http::{limit_param, query_param, ApiError, Reply};

/// A file's record as the API shows it.
pub fn file_json(f: &FileProgress) -> Value {
    json!({
        "fileId": f.file_id, "bucket": f.bucket, "key": f.key, "version": f.version, "status": f.status,
        "arrivedAt": f.arrived_at, "startedAt": f.started_at, "updatedAt": f.updated_at,
        "readings": f.readings, "stored": f.stored, "failed": f.failed, "runs": f.runs,
        "resumeAt": {"offset": f.resume.offset, "skip": f.resume.skip},
        "movedTo": f.moved_to, "report": f.report,
    })
}

/// Both routes: one file when the path names it, else a page of one status.
pub async fn files<P: InboxProgress>(request: Request, progress: &P) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    use lambda_http::RequestExt as _;
    if let Some(file_id) = request.path_parameters_ref().and_then(|p| p.first("fileId")).map(str::to_owned) {
        let file = progress.get(&file_id).await?.ok_or_else(|| ApiError::NotFound(format!("no inbox file {file_id}")))?;
        let problems = progress.problems(&file_id, file.problem_base, MAX_REPORTED_ERRORS).await?;
        let mut body = file_json(&file);
        body["problems"] = json!(problems);
        return Ok((200, body));
    }
    let status = match query_param(&request, "status") {
        None => FileStatus::Filing,
        Some(s) => FileStatus::parse(&s).ok_or_else(|| ApiError::bad("status", "must be FILING, ARCHIVED or FAILED"))?,
    };
    let limit = limit_param(&request, 25, 100)?;
    let page = progress.by_status(status, limit, query_param(&request, "next").as_deref()).await?;
    Ok((200, json!({"files": page.items.iter().map(file_json).collect::<Vec<_>>(), "next": page.next})))
}
