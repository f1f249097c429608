//! HTTP routes of the simulated Task Service (titan-api.md §2): JSON routes in the
//! `{success,data}` / `{success:false,error:{code,message}}` envelope, exports and
//! media as raw bytes, CDN media with the bare `{"error": …}` body.
//!
//! Invariant: handlers never panic on request input; every rejection is an envelope.

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

use super::data::{self, Cell, ColumnKind, Generator};
use super::export::{self, ExportChunks, ExportFormat};
use super::faults::{self, FaultApplied, Plan};
use super::gate::{API_PREFIX, gate};
use super::scenario::{ListShape, SimTask};
use super::state::{ExecRef, SimState};
use super::timeline::{Control, Snapshot, Status};

type St = State<Arc<SimState>>;

pub(crate) fn router(st: Arc<SimState>) -> Router {
    let p = |s: &str| format!("{API_PREFIX}{s}");
    Router::new()
        .route(&p("/tasks"), get(list_tasks))
        .route(&p("/tasks/{id}"), get(get_task))
        .route(&p("/tasks/{id}/executions"), get(task_executions))
        .route(&p("/tasks/{id}/datasets"), get(task_datasets))
        .route(&p("/executions"), get(list_executions))
        .route(&p("/executions/{id}"), get(get_execution))
        .route(&p("/executions/{id}/results"), get(results_meta))
        .route(&p("/executions/{id}/results/export"), get(export))
        .route(&p("/executions/{id}/results/download"), get(download))
        .route(&p("/executions/{id}/datasets"), get(exec_datasets))
        .route(&p("/executions/{id}/media/{media_id}/download"), get(media))
        .route(&p("/executions/{id}/pause"), post(pause))
        .route(&p("/executions/{id}/resume"), post(resume))
        .route(&p("/executions/{id}/stop"), post(stop))
        .route("/media/{exec_id}/{media_id}", get(cdn_media))
        .fallback(no_route)
        .method_not_allowed_fallback(no_route)
        .layer(axum::middleware::from_fn_with_state(st.clone(), gate))
        .with_state(st)
}

/// A rejected request, rendered as the error envelope (§1.4).
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"success": false, "error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(data: Value) -> ApiResult {
    Ok(Json(json!({"success": true, "data": data})).into_response())
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

fn task_of<'a>(st: &'a SimState, id: &str) -> Result<&'a SimTask, ApiError> {
    st.task(id)
        .ok_or_else(|| ApiError::not_found(format!("task {id} not found")))
}

fn exec_of<'a>(st: &'a SimState, id: &str) -> Result<ExecRef<'a>, ApiError> {
    st.exec(id)
        .ok_or_else(|| ApiError::not_found(format!("execution {id} not found")))
}

// ---- JSON views ----

fn task_json(t: &SimTask, st: &SimState) -> Value {
    // Tasks exist before any of their executions.
    let created = t
        .executions
        .iter()
        .map(|e| e.created_at.as_str())
        .min()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|c| c.with_timezone(&chrono::Utc) - chrono::Duration::hours(1))
        .unwrap_or_else(|| super::scenario::created_base(st.scenario.seed))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({
        "id": t.id, "name": t.name, "status": t.status, "output_schema": t.output_schema,
        "execution_type": "single", "created_at": created, "updated_at": created,
    })
}

fn exec_json(st: &SimState, e: ExecRef<'_>, s: &Snapshot<'_>) -> Value {
    let at = |d: Option<Duration>| d.map(|d| st.wall(d));
    let error = match s.status {
        Status::Final(f) => e
            .exec
            .error
            .clone()
            .or_else(|| (f == "failed").then(|| "execution failed".to_owned())),
        _ => None,
    };
    json!({
        "id": e.exec.id, "task_id": e.task.id, "status": s.status.as_str(),
        "created_at": e.exec.created_at,
        "updated_at": at(s.last_change).unwrap_or_else(|| e.exec.created_at.clone()),
        "started_at": at(s.started), "completed_at": at(s.finished), "error": error,
    })
}

fn dataset_json(st: &SimState, e: ExecRef<'_>, s: &Snapshot<'_>) -> Value {
    json!({
        "id": format!("ds-{}", e.exec.id), "task_id": e.task.id, "execution_id": e.exec.id,
        "name": format!("{} ({})", e.task.name, e.exec.id), "record_count": e.exec.rows,
        "format": "json", "created_at": s.finished.map(|f| st.wall(f + e.exec.results_lag)),
    })
}

// ---- pagination ----

fn query_param(q: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// One page of `items` per `limit` (clamped to `page_max`) and `offset`, in the scenario's list shape.
fn page(st: &SimState, q: Option<&str>, items: Vec<Value>) -> ApiResult {
    let num = |name: &str| -> Result<Option<usize>, ApiError> {
        query_param(q, name)
            .map(|v| {
                v.parse::<usize>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "{name} must be a non-negative integer, got {v:?}"
                    ))
                })
            })
            .transpose()
    };
    let sc = &st.scenario;
    let limit = match num("limit")? {
        Some(0) => return Err(ApiError::bad_request("limit must be at least 1")),
        Some(l) => l.min(sc.page_max),
        None => sc.page_default.min(sc.page_max),
    };
    let offset = num("offset")?.unwrap_or(0);
    let total = items.len();
    let slice: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    ok(match sc.list_shape {
        ListShape::Array => Value::Array(slice),
        ListShape::Object => {
            json!({"items": slice, "total": total, "limit": limit, "offset": offset})
        }
    })
}

// ---- handlers ----

async fn list_tasks(State(st): St, RawQuery(q): RawQuery) -> ApiResult {
    let items = st
        .scenario
        .tasks
        .iter()
        .map(|t| task_json(t, &st))
        .collect();
    page(&st, q.as_deref(), items)
}

async fn get_task(State(st): St, Path(id): Path<String>) -> ApiResult {
    ok(task_json(task_of(&st, &id)?, &st))
}

async fn task_executions(
    State(st): St,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    task_of(&st, &id)?;
    let now = st.now();
    let items = st
        .all_execs()
        .filter(|e| e.task.id == id)
        .map(|e| exec_json(&st, e, &st.snapshot(e, now)))
        .collect();
    page(&st, q.as_deref(), items)
}

async fn list_executions(State(st): St, RawQuery(q): RawQuery) -> ApiResult {
    let now = st.now();
    let items = st
        .all_execs()
        .map(|e| exec_json(&st, e, &st.snapshot(e, now)))
        .collect();
    page(&st, q.as_deref(), items)
}

async fn get_execution(State(st): St, Path(id): Path<String>) -> ApiResult {
    let e = exec_of(&st, &id)?;
    ok(exec_json(&st, e, &st.snapshot(e, st.now())))
}

fn datasets(st: &SimState, q: Option<&str>, pick: impl Fn(&ExecRef<'_>) -> bool) -> ApiResult {
    let now = st.now();
    let items = st
        .all_execs()
        .filter(pick)
        .filter_map(|e| {
            let s = st.snapshot(e, now);
            s.results_ready(e.exec, now)
                .then(|| dataset_json(st, e, &s))
        })
        .collect();
    page(st, q, items)
}

async fn task_datasets(State(st): St, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    task_of(&st, &id)?;
    datasets(&st, q.as_deref(), |e| e.task.id == id)
}

async fn exec_datasets(State(st): St, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    exec_of(&st, &id)?;
    datasets(&st, q.as_deref(), |e| e.exec.id == id)
}

async fn results_meta(State(st): St, Path(id): Path<String>) -> ApiResult {
    let e = exec_of(&st, &id)?;
    let now = st.now();
    let s = st.snapshot(e, now);
    let ready = s.results_ready(e.exec, now);
    ok(json!({
        "execution_id": e.exec.id, "available": ready,
        "record_count": if ready { e.exec.rows } else { 0 },
        "formats": if ready { json!(["json", "csv"]) } else { json!([]) },
        "created_at": if ready { s.finished.map(|f| st.wall(f + e.exec.results_lag)) } else { None },
    }))
}

/// The execution, if its results exist now; otherwise 404 as after §7 #13.
fn with_results<'a>(st: &'a SimState, id: &str) -> Result<ExecRef<'a>, ApiError> {
    let e = exec_of(st, id)?;
    let now = st.now();
    let s = st.snapshot(e, now);
    if s.results_ready(e.exec, now) {
        Ok(e)
    } else {
        Err(ApiError::not_found(format!(
            "results for execution {id} are not available (status: {})",
            s.status.as_str()
        )))
    }
}

/// The body fault the gate drew for this request, if any.
type Fault = Option<Extension<Plan>>;

async fn export(
    State(st): St,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    fault: Fault,
) -> ApiResult {
    exec_of(&st, &id)?;
    let format = match query_param(q.as_deref(), "format") {
        None => ExportFormat::Json,
        Some(f) => f.parse::<ExportFormat>().map_err(ApiError::bad_request)?,
    };
    file(&st, &id, format, fault.map(|Extension(p)| p))
}

async fn download(State(st): St, Path(id): Path<String>, fault: Fault) -> ApiResult {
    file(&st, &id, ExportFormat::Csv, fault.map(|Extension(p)| p))
}

/// A streamed, non-enveloped export body (chunked; no Content-Length), or the body
/// fault in `plan` once the results exist (marked with [`FaultApplied`]).
fn file(st: &SimState, id: &str, format: ExportFormat, plan: Option<Plan>) -> ApiResult {
    let e = with_results(st, id)?;
    let mut resp = match plan.and_then(|p| faults::export_replacement(p.kind)) {
        Some(resp) => resp,
        None => export_response(st, e, format, plan)?,
    };
    if plan.is_some() {
        resp.extensions_mut().insert(FaultApplied);
    }
    Ok(resp)
}

fn export_response(
    st: &SimState,
    e: ExecRef<'_>,
    format: ExportFormat,
    plan: Option<Plan>,
) -> ApiResult {
    let id = &e.exec.id;
    let body = match e.exec.export_file_for(format) {
        Some(path) => file_body(path)?,
        None => generated_body(st, e, format, plan),
    };
    let disposition = format!("attachment; filename=\"{id}.{}\"", format.as_str());
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(export::content_type(format)),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .map_err(|_| ApiError::bad_request("execution id not usable as a file name"))?,
            ),
        ],
        body,
    )
        .into_response())
}

/// The export as the generator makes it, with the body fault of `plan` applied.
fn generated_body(st: &SimState, e: ExecRef<'_>, format: ExportFormat, plan: Option<Plan>) -> Body {
    let chunks = ExportChunks::new(
        st.scenario.seed,
        e.task,
        &e.exec.id,
        e.exec.rows,
        format,
        &st.base_url,
    );
    faults::export_body(chunks, e.exec.rows, plan, &st.scenario.faults)
}

/// A scenario's `export_file`, streamed in 1 MiB chunks, each a memory map of its range.
///
/// A remote Titan costs the connector's cores nothing; the simulator shares them in
/// `make bench`, so it should cost no more than a file server. Reading copied every byte
/// from the page cache into a buffer before the socket copied it again; a mapped chunk
/// goes from the page cache to the socket once (0.33 -> 0.27 CPU s per 642 MB; the rest is
/// the socket).
/// Chunks are mapped one at a time and unmapped when sent, so the simulator's memory stays
/// flat. (The connector reads its local files with `read`; the simulator does not depend
/// on the code it stands in for.)
fn file_body(path: &std::path::Path) -> Result<Body, ApiError> {
    const CHUNK: u64 = 1 << 20;
    let internal = |e: std::io::Error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            format!("export file {}: {e}", path.display()),
        )
    };
    let file = std::fs::File::open(path).map_err(internal)?;
    let len = file.metadata().map_err(internal)?.len();
    let chunks = futures::stream::unfold((Some(file), 0), move |(file, offset)| async move {
        let file = file.filter(|_| offset < len)?;
        let n = CHUNK.min(len - offset);
        // Mapped with its pages populated on a blocking thread, so an export that is not
        // in the page cache is read from disk there and not on the async worker.
        let mapped = tokio::task::spawn_blocking(move || {
            let chunk = map_range(&file, offset, n);
            (file, chunk)
        })
        .await;
        match mapped {
            Ok((file, Ok(chunk))) => Some((Ok(chunk), (Some(file), offset + n))),
            Ok((_, Err(e))) => Some((Err(e), (None, len))),
            Err(e) => Some((Err(std::io::Error::other(e)), (None, len))),
        }
    });
    Ok(Body::from_stream(chunks))
}

/// `len` bytes of `file` from `offset`, mapped read-only.
#[allow(unsafe_code)]
fn map_range(file: &std::fs::File, offset: u64, len: u64) -> std::io::Result<bytes::Bytes> {
    let len = usize::try_from(len).map_err(std::io::Error::other)?;
    // SAFETY: a mapping is undefined behaviour if the file changes under it. Export files
    // are benchmark and test fixtures, written before the simulator starts; `export_file`'s
    // docs say they must not change while it runs. The map is read-only.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len)
            .populate()
            .map(file)?
    };
    Ok(bytes::Bytes::from_owner(map))
}

/// Checks that `media_id` names a non-null media cell of an execution with results.
fn media_cell<'a>(st: &'a SimState, id: &str, media_id: &str) -> Result<ExecRef<'a>, ApiError> {
    let e = with_results(st, id)?;
    let missing = || ApiError::not_found(format!("media {media_id} not found in execution {id}"));
    let (row, col) = data::parse_media_id(media_id).ok_or_else(missing)?;
    let g = Generator::new(st.scenario.seed, e.task, id, &st.base_url);
    let is_media = g
        .columns
        .get(col)
        .is_some_and(|c| c.kind == ColumnKind::Media);
    if row >= e.exec.rows || !is_media || g.cell(row, col, &mut String::new()) == Cell::Null {
        return Err(missing());
    }
    Ok(e)
}

fn media_response(st: &SimState, exec_id: &str, media_id: &str) -> Response {
    let (content_type, bytes) = data::media_bytes(st.scenario.seed, exec_id, media_id);
    let ext = if content_type == "image/png" {
        "png"
    } else {
        "svg"
    };
    let disposition = format!("inline; filename=\"{media_id}.{ext}\"");
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response()
}

async fn media(State(st): St, Path((id, media_id)): Path<(String, String)>) -> ApiResult {
    media_cell(&st, &id, &media_id)?;
    // Behind a CDN the signed link is what expires: `cdn_media` answers for it.
    if !st.scenario.media_redirect && st.scenario.media_expired(&id, &media_id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "media link has expired",
        ));
    }
    if st.scenario.media_redirect {
        let token = cdn_token(st.scenario.seed, &st.scenario.token, &id, &media_id);
        let location = format!("{}/media/{id}/{media_id}?token={token}", st.base_url);
        return Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response());
    }
    Ok(media_response(&st, &id, &media_id))
}

/// Signed-URL token of the CDN form; deterministic so tests can predict it.
fn cdn_token(seed: u64, api_token: &str, exec_id: &str, media_id: &str) -> String {
    let h = [api_token, exec_id, media_id].iter().fold(seed, |h, s| {
        data::splitmix64(s.bytes().fold(h, |h, b| data::splitmix64(h ^ u64::from(b))))
    });
    format!("{h:016x}")
}

/// CDN media (§1.5): token in the query, errors as `{"error": "…"}` without `success`.
async fn cdn_media(
    State(st): St,
    Path((id, media_id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let cdn_err =
        |status: StatusCode, msg: String| (status, Json(json!({"error": msg}))).into_response();
    let want = cdn_token(st.scenario.seed, &st.scenario.token, &id, &media_id);
    match query_param(q.as_deref(), "token") {
        Some(t) if t == want => {}
        Some(_) => {
            return cdn_err(
                StatusCode::FORBIDDEN,
                "invalid or expired media token".into(),
            );
        }
        None => return cdn_err(StatusCode::UNAUTHORIZED, "missing media token".into()),
    }
    if st.scenario.media_expired(&id, &media_id) {
        return cdn_err(StatusCode::FORBIDDEN, "media link has expired".into());
    }
    match media_cell(&st, &id, &media_id) {
        Ok(_) => media_response(&st, &id, &media_id),
        Err(e) => cdn_err(e.status, e.message),
    }
}

fn transition(
    st: &SimState,
    id: &str,
    f: impl FnOnce(&mut Control, &super::scenario::SimExecution, Duration) -> Result<(), String>,
) -> ApiResult {
    let e = exec_of(st, id)?;
    let now = st.now();
    st.control(e, |c| f(c, e.exec, now))
        .map_err(ApiError::bad_request)?;
    ok(exec_json(st, e, &st.snapshot(e, now)))
}

async fn pause(State(st): St, Path(id): Path<String>) -> ApiResult {
    transition(&st, &id, Control::pause)
}

async fn resume(State(st): St, Path(id): Path<String>) -> ApiResult {
    transition(&st, &id, Control::resume)
}

async fn stop(State(st): St, Path(id): Path<String>) -> ApiResult {
    transition(&st, &id, Control::stop)
}
