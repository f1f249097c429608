//! Scenario files: what the simulator serves (tasks, execution timelines, seed, auth, limits).
//!
//! Invariant: a `Scenario` that passed [`Scenario::validated`] has unique, path-safe ids,
//! a non-empty header-safe token, an object `output_schema` with at least one property,
//! and an RFC 3339 `created_at` on every execution (derived from the seed when absent).

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::data::splitmix64;
use super::faults::FaultConfig;

/// Which credential header the simulated deployment accepts (titan-api.md §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthHeader {
    /// Only `Authorization: Bearer <token>`.
    Bearer,
    /// Only `X-API-Key: <token>`.
    XApiKey,
    /// Either header (the default).
    #[default]
    Either,
}

/// Shape of `data` in list responses; the docs do not say which one Titan uses (§7 #7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListShape {
    /// `data` is a bare JSON array (the default).
    #[default]
    Array,
    /// `data` is `{items, total, limit, offset}`.
    Object,
}

/// How `number` columns named like `*price*` are emitted (titan-api.md: docs model prices as strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PriceFormat {
    /// A JSON number / plain CSV decimal like `1299.00` (the default).
    #[default]
    Number,
    /// A string like `"$1,299.00"`, `"€12.50"` or `"£7.05"`.
    Currency,
}

/// Everything one simulator instance serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Seed of all generated data; same seed, same bytes.
    #[serde(default)]
    pub seed: u64,
    /// The only credential accepted.
    pub token: String,
    #[serde(default)]
    pub auth_header: AuthHeader,
    /// `None`: never throttle (headers still sent, with a large limit).
    #[serde(default)]
    pub rate_limit_per_minute: Option<u32>,
    /// Largest `limit` honoured on list routes; larger values are clamped.
    #[serde(default = "default_page_max")]
    pub page_max: usize,
    /// Page size when a list request has no `limit` (capped by `page_max`).
    #[serde(default = "default_page_default")]
    pub page_default: usize,
    #[serde(default)]
    pub list_shape: ListShape,
    /// Media download answers 302 to a CDN-style `/media/...?token=` URL instead of bytes.
    #[serde(default)]
    pub media_redirect: bool,
    /// Share (0–1) of media links that have expired: their download route (and CDN URL)
    /// answers 403 `FORBIDDEN` "media link has expired", while every other route accepts
    /// the token. Which links, is a seeded function of (execution, media id): see
    /// [`Scenario::media_expired`].
    #[serde(default)]
    pub expired_media_rate: f64,
    /// Seeded fault injection; every rate defaults to 0 (no faults).
    #[serde(default)]
    pub faults: FaultConfig,
    #[serde(default)]
    pub tasks: Vec<SimTask>,
}

/// One task and its executions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimTask {
    pub id: String,
    pub name: String,
    #[serde(default = "default_task_status")]
    pub status: String,
    /// JSON-Schema-like row description; property order is the column order of exports.
    #[serde(deserialize_with = "super::ordered::schema")]
    pub output_schema: serde_json::Value,
    #[serde(default)]
    pub executions: Vec<SimExecution>,
    /// CSV exports end lines with `\r\n` instead of `\n`.
    #[serde(default)]
    pub csv_crlf: bool,
    /// CSV exports start with a UTF-8 byte-order mark.
    #[serde(default)]
    pub csv_bom: bool,
    /// Share of rows (0..=1) with one cell that does not match its type; see `data::bad_cell`.
    #[serde(default)]
    pub bad_row_rate: f64,
    /// Text with line breaks, tabs, RTL, CJK, emoji, edge spaces, quotes; integers beyond 2^53.
    #[serde(default)]
    pub hostile: bool,
    #[serde(default)]
    pub price_format: PriceFormat,
}

/// One execution: its row count and its status timeline relative to simulator start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimExecution {
    pub id: String,
    pub rows: u64,
    /// Status after `queued_for + running_for`; any string is served as is.
    #[serde(default = "default_final_status")]
    pub final_status: String,
    #[serde(default, with = "humantime_serde")]
    pub queued_for: Duration,
    #[serde(default, with = "humantime_serde")]
    pub running_for: Duration,
    /// RFC 3339; empty means "derive from the seed" (done by [`Scenario::validated`]).
    #[serde(default)]
    pub created_at: String,
    /// Shown once terminal; `failed` without one gets a generic message.
    #[serde(default)]
    pub error: Option<String>,
    /// Results stay 404 for this long after a successful completion (§3: results can lag).
    #[serde(default, with = "humantime_serde")]
    pub results_lag: Duration,
    /// Serve the export in this file's format (`.csv` or `.json`) from the file, as is,
    /// instead of generating it; the other format is still generated. For benchmarks:
    /// generating rows costs the simulator about half the CPU the connector spends
    /// converting them, on the same cores. The file must hold what the generator would
    /// serve (`examples/bench_gen.rs` writes such files); faults are not applied to it. It
    /// is memory-mapped while served, so it must not change while the simulator runs.
    #[serde(default)]
    pub export_file: Option<PathBuf>,
}

impl SimExecution {
    /// The file to serve for an export in `format`, if one is configured for it.
    pub(crate) fn export_file_for(&self, format: super::export::ExportFormat) -> Option<&Path> {
        let path = self.export_file.as_deref()?;
        let ext = path.extension()?.to_str()?;
        (ext.eq_ignore_ascii_case(format.as_str())).then_some(path)
    }
}

/// Why a scenario could not be loaded; `origin` is the file path or `<string>`.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid scenario {origin}: {source}")]
    Parse {
        origin: String,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("invalid scenario {origin}: {at}: {reason}")]
    Invalid {
        origin: String,
        /// Field path, e.g. `tasks[1].executions[0].created_at`.
        at: String,
        reason: String,
    },
}

fn default_page_max() -> usize {
    100
}
fn default_page_default() -> usize {
    20
}
fn default_task_status() -> String {
    "active".to_owned()
}
fn default_final_status() -> String {
    "completed".to_owned()
}

impl Default for Scenario {
    /// An empty scenario; set `token` (and add tasks) before starting it.
    fn default() -> Self {
        Scenario {
            seed: 0,
            token: String::new(),
            auth_header: AuthHeader::default(),
            rate_limit_per_minute: None,
            page_max: default_page_max(),
            page_default: default_page_default(),
            list_shape: ListShape::default(),
            media_redirect: false,
            expired_media_rate: 0.0,
            faults: FaultConfig::default(),
            tasks: Vec::new(),
        }
    }
}

impl Default for SimTask {
    fn default() -> Self {
        SimTask {
            id: String::new(),
            name: String::new(),
            status: default_task_status(),
            output_schema: serde_json::Value::Null,
            executions: Vec::new(),
            csv_crlf: false,
            csv_bom: false,
            bad_row_rate: 0.0,
            hostile: false,
            price_format: PriceFormat::Number,
        }
    }
}

impl Default for SimExecution {
    fn default() -> Self {
        SimExecution {
            id: String::new(),
            rows: 0,
            final_status: default_final_status(),
            queued_for: Duration::ZERO,
            running_for: Duration::ZERO,
            created_at: String::new(),
            error: None,
            results_lag: Duration::ZERO,
            export_file: None,
        }
    }
}

impl Scenario {
    /// Whether the link of `media_id` in `exec_id` has expired (see `expired_media_rate`):
    /// deterministic, so tests can predict which cells fail.
    pub fn media_expired(&self, exec_id: &str, media_id: &str) -> bool {
        if self.expired_media_rate <= 0.0 {
            return false;
        }
        let h = super::data::splitmix64(
            self.seed
                ^ super::data::fnv1a(exec_id.as_bytes()).rotate_left(7)
                ^ super::data::fnv1a(media_id.as_bytes()),
        );
        (h % 10_000) < (self.expired_media_rate * 10_000.0) as u64
    }

    /// Parses and validates a scenario given as TOML text.
    pub fn from_toml_str(s: &str) -> Result<Self, ScenarioError> {
        Self::parse(s, "<string>")
    }

    /// Reads, parses and validates a scenario file.
    pub fn from_file(p: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(p).map_err(|source| ScenarioError::Read {
            path: p.to_owned(),
            source,
        })?;
        Self::parse(&text, &p.display().to_string())
    }

    fn parse(s: &str, origin: &str) -> Result<Self, ScenarioError> {
        let raw: Scenario = toml::from_str(s).map_err(|e| ScenarioError::Parse {
            origin: origin.to_owned(),
            source: Box::new(e),
        })?;
        raw.validated_from(origin)
    }

    /// Checks the invariants the server relies on and fills derived defaults.
    /// Idempotent; `start` calls it, so programmatic scenarios get the same checks.
    pub fn validated(self) -> Result<Self, ScenarioError> {
        self.validated_from("<in-memory>")
    }

    fn validated_from(mut self, origin: &str) -> Result<Self, ScenarioError> {
        let bad = |at: String, reason: String| ScenarioError::Invalid {
            origin: origin.to_owned(),
            at,
            reason,
        };
        if self.token.is_empty() || !self.token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(
                "token".into(),
                "must be non-empty printable ASCII without spaces".into(),
            ));
        }
        if self.page_max == 0 || self.page_default == 0 {
            return Err(bad(
                "page_max/page_default".into(),
                "must be at least 1".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.expired_media_rate) {
            return Err(bad(
                "expired_media_rate".into(),
                "must be between 0 and 1".into(),
            ));
        }
        if self.rate_limit_per_minute == Some(0) {
            return Err(bad(
                "rate_limit_per_minute".into(),
                "must be at least 1 (omit it to disable limiting)".into(),
            ));
        }
        self.faults
            .check()
            .map_err(|(field, reason)| bad(format!("faults.{field}"), reason))?;
        let base = created_base(self.seed);
        let mut task_ids = HashSet::new();
        let mut exec_ids = HashSet::new();
        let mut ordinal: i64 = 0;
        for (ti, task) in self.tasks.iter_mut().enumerate() {
            let at = format!("tasks[{ti}]");
            check_id(&task.id).map_err(|r| bad(format!("{at}.id"), r))?;
            if !task_ids.insert(task.id.clone()) {
                return Err(bad(
                    format!("{at}.id"),
                    format!("duplicate task id {:?}", task.id),
                ));
            }
            check_schema(&task.output_schema).map_err(|r| bad(format!("{at}.output_schema"), r))?;
            check_bad_rows(task).map_err(|r| bad(format!("{at}.bad_row_rate"), r))?;
            for (ei, exec) in task.executions.iter_mut().enumerate() {
                let at = format!("{at}.executions[{ei}]");
                check_id(&exec.id).map_err(|r| bad(format!("{at}.id"), r))?;
                if !exec_ids.insert(exec.id.clone()) {
                    return Err(bad(
                        format!("{at}.id"),
                        format!("duplicate execution id {:?} (ids are global)", exec.id),
                    ));
                }
                if exec.final_status.is_empty() {
                    return Err(bad(
                        format!("{at}.final_status"),
                        "must not be empty".into(),
                    ));
                }
                if let Some(path) = &exec.export_file {
                    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
                    if !["csv", "json"].contains(&ext.to_ascii_lowercase().as_str()) {
                        return Err(bad(
                            format!("{at}.export_file"),
                            format!("{} does not end in .csv or .json", path.display()),
                        ));
                    }
                    if !path.is_file() {
                        return Err(bad(
                            format!("{at}.export_file"),
                            format!("{} is not a readable file", path.display()),
                        ));
                    }
                }
                ordinal += 1;
                if exec.created_at.is_empty() {
                    exec.created_at = (base + chrono::Duration::minutes(97 * ordinal))
                        .to_rfc3339_opts(SecondsFormat::Secs, true);
                } else if let Err(e) = DateTime::parse_from_rfc3339(&exec.created_at) {
                    return Err(bad(
                        format!("{at}.created_at"),
                        format!("{:?} is not RFC 3339: {e}", exec.created_at),
                    ));
                }
            }
        }
        Ok(self)
    }
}

/// Deterministic creation time base of a scenario: a whole hour in the first
/// 150 days of 2026, so it precedes any simulator run.
pub(crate) fn created_base(seed: u64) -> DateTime<Utc> {
    const JAN_1_2026: i64 = 1_767_225_600;
    let hours = (splitmix64(seed) % (150 * 24)) as i64;
    Utc.timestamp_opt(JAN_1_2026 + hours * 3600, 0)
        .single()
        .expect("a 2026 timestamp is always representable")
}

/// Ids appear in URL paths and in `Content-Disposition` filenames.
fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')))
    {
        return Err(format!("{id:?} contains {c:?}; use [A-Za-z0-9._~-]"));
    }
    Ok(())
}

fn check_bad_rows(task: &SimTask) -> Result<(), String> {
    let rate = task.bad_row_rate;
    if !(0.0..=1.0).contains(&rate) {
        return Err(format!("{rate} is not a share in 0..=1"));
    }
    let typed = super::data::columns(&task.output_schema)
        .iter()
        .any(|c| super::dirty::can_be_bad(c.kind));
    if rate > 0.0 && !typed {
        return Err("bad rows need an integer, number, boolean or date-time column".into());
    }
    Ok(())
}

fn check_schema(schema: &serde_json::Value) -> Result<(), String> {
    let props = schema
        .get("properties")
        .and_then(|p| p.as_object())
        .ok_or("must be an object with a `properties` table")?;
    if props.is_empty() {
        return Err("`properties` must declare at least one property".into());
    }
    if let Some((name, _)) = props.iter().find(|(_, v)| !v.is_object()) {
        return Err(format!(
            "property {name:?} must be a table like {{ type = \"string\" }}"
        ));
    }
    match schema.get("required") {
        None => Ok(()),
        Some(serde_json::Value::Array(a)) if a.iter().all(|v| v.is_string()) => Ok(()),
        Some(_) => Err("`required` must be an array of property names".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
token = "t0k"
[[tasks]]
id = "task-1"
name = "Products"
output_schema = { type = "object", properties = { b = { type = "string" }, a = { type = "integer" } } }
[[tasks.executions]]
id = "exec-1"
rows = 10
queued_for = "150ms"
running_for = "2s"
[[tasks.executions]]
id = "exec-2"
rows = 0
final_status = "failed"
error = "boom"
created_at = "2026-02-03T04:05:06Z"
"#;

    #[test]
    fn parses_with_defaults() {
        let s = Scenario::from_toml_str(MINIMAL).expect("valid scenario");
        assert_eq!(s.seed, 0);
        assert_eq!(s.token, "t0k");
        assert_eq!(s.auth_header, AuthHeader::Either);
        assert_eq!(s.rate_limit_per_minute, None);
        assert_eq!((s.page_max, s.page_default), (100, 20));
        assert_eq!(s.list_shape, ListShape::Array);
        let t = &s.tasks[0];
        assert_eq!(t.status, "active");
        assert!(!t.csv_crlf && !t.csv_bom);
        let keys: Vec<&String> = t.output_schema["properties"]
            .as_object()
            .expect("obj")
            .keys()
            .collect();
        assert_eq!(keys, ["b", "a"]);
        let e1 = &t.executions[0];
        assert_eq!(e1.final_status, "completed");
        assert_eq!(e1.queued_for, Duration::from_millis(150));
        assert_eq!(e1.running_for, Duration::from_secs(2));
        assert_eq!(e1.results_lag, Duration::ZERO);
        assert_eq!(e1.error, None);
        // Derived: base hour of seed 0 plus 97 minutes for the first execution.
        let want = (created_base(0) + chrono::Duration::minutes(97))
            .to_rfc3339_opts(SecondsFormat::Secs, true);
        assert_eq!(e1.created_at, want);
        assert!(e1.created_at.starts_with("2026-") && e1.created_at.ends_with('Z'));
        let e2 = &t.executions[1];
        assert_eq!(e2.created_at, "2026-02-03T04:05:06Z");
        assert_eq!(e2.error.as_deref(), Some("boom"));
        // Validation is idempotent.
        let again = s.clone().validated().expect("still valid");
        assert_eq!(again.tasks[0].executions[0].created_at, want);
    }

    #[test]
    fn enum_spellings() {
        let s = Scenario::from_toml_str(
            "token='x'\nauth_header='x-api-key'\nlist_shape='object'\nrate_limit_per_minute=5",
        )
        .expect("valid");
        assert_eq!(s.auth_header, AuthHeader::XApiKey);
        assert_eq!(s.list_shape, ListShape::Object);
        assert_eq!(s.rate_limit_per_minute, Some(5));
        let s = Scenario::from_toml_str("token='x'\nauth_header='bearer'").expect("valid");
        assert_eq!(s.auth_header, AuthHeader::Bearer);
    }

    #[test]
    fn unknown_field_is_rejected_with_position() {
        let err = Scenario::from_toml_str("token = 'x'\nsed = 3\n").expect_err("typo must fail");
        let msg = err.to_string();
        assert!(msg.starts_with("invalid scenario <string>: "), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        assert!(msg.contains("sed"), "{msg}");
    }

    #[test]
    fn from_file_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, "token = 'x'\n[[tasks]]\nid = 'a'\n").expect("write");
        let msg = Scenario::from_file(&p)
            .expect_err("missing fields")
            .to_string();
        assert!(msg.contains("bad.toml"), "{msg}");
        let missing = dir.path().join("nope.toml");
        let err = Scenario::from_file(&missing).expect_err("missing file");
        assert!(matches!(err, ScenarioError::Read { ref path, .. } if path == &missing));
    }

    fn invalid_at(toml: &str) -> (String, String) {
        match Scenario::from_toml_str(toml) {
            Err(ScenarioError::Invalid { at, reason, .. }) => (at, reason),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(invalid_at("token = ''").0, "token");
        assert_eq!(invalid_at("token = 'a b'").0, "token");
        assert_eq!(
            invalid_at("token = 'a'\npage_max = 0").0,
            "page_max/page_default"
        );
        assert_eq!(
            invalid_at("token = 'a'\nrate_limit_per_minute = 0").0,
            "rate_limit_per_minute"
        );
        let dup_exec = MINIMAL.replace("id = \"exec-2\"", "id = \"exec-1\"");
        let (at, reason) = invalid_at(&dup_exec);
        assert_eq!(at, "tasks[0].executions[1].id");
        assert!(reason.contains("duplicate"), "{reason}");
        let bad_id = MINIMAL.replace("id = \"task-1\"", "id = \"task 1\"");
        assert_eq!(invalid_at(&bad_id).0, "tasks[0].id");
        let bad_time = MINIMAL.replace("2026-02-03T04:05:06Z", "yesterday");
        assert_eq!(invalid_at(&bad_time).0, "tasks[0].executions[1].created_at");
        let no_props = MINIMAL.replace(
            "properties = { b = { type = \"string\" }, a = { type = \"integer\" } }",
            "properties = {}",
        );
        assert_eq!(invalid_at(&no_props).0, "tasks[0].output_schema");
    }

    #[test]
    fn dirty_data_knobs() {
        let s = Scenario::from_toml_str(&MINIMAL.replace(
            "name = \"Products\"",
            "name = \"Products\"\nbad_row_rate = 0.25\nhostile = true\nprice_format = \"currency\"",
        ))
        .expect("valid");
        let t = &s.tasks[0];
        assert_eq!(
            (t.bad_row_rate, t.hostile, t.price_format),
            (0.25, true, PriceFormat::Currency)
        );
        let d = &Scenario::from_toml_str(MINIMAL).expect("valid").tasks[0];
        assert_eq!(
            (d.bad_row_rate, d.hostile, d.price_format),
            (0.0, false, PriceFormat::Number)
        );
        let rate = |r: &str| {
            MINIMAL.replace(
                "name = \"Products\"",
                &format!("name = \"P\"\nbad_row_rate = {r}"),
            )
        };
        assert_eq!(invalid_at(&rate("1.5")).0, "tasks[0].bad_row_rate");
        let only_text = rate("0.1").replace(", a = { type = \"integer\" }", "");
        let (at, reason) = invalid_at(&only_text);
        assert_eq!(at, "tasks[0].bad_row_rate");
        assert!(reason.contains("integer, number"), "{reason}");
        assert!(
            Scenario::from_toml_str(&MINIMAL.replace(
                "name = \"Products\"",
                "name = \"P\"\nprice_format = \"euro\""
            ))
            .is_err()
        );
    }

    #[test]
    fn demo_scenario_is_valid_and_as_documented() {
        let s = Scenario::from_toml_str(include_str!("../../../examples/scenarios/demo.toml"))
            .expect("demo is valid");
        assert_eq!(s.token, "demo-token");
        assert_eq!(s.tasks.len(), 3);
        assert_eq!(s.faults, FaultConfig::default(), "the demo is fault-free");
        assert!(
            s.tasks.iter().all(|t| t.bad_row_rate == 0.0
                && !t.hostile
                && t.price_format == PriceFormat::Number)
        );
        let props: Vec<&String> = s.tasks[0].output_schema["properties"]
            .as_object()
            .expect("obj")
            .keys()
            .collect();
        assert_eq!(
            props,
            [
                "product_name",
                "price",
                "currency",
                "in_stock",
                "rating",
                "review_count",
                "scraped_at",
                "product_url",
                "image_url"
            ]
        );
        let finals: Vec<&str> = s
            .tasks
            .iter()
            .flat_map(|t| &t.executions)
            .map(|e| e.final_status.as_str())
            .collect();
        for want in ["completed", "completed_with_errors", "failed"] {
            assert!(finals.contains(&want), "{want}");
        }
        for e in s.tasks.iter().flat_map(|t| &t.executions) {
            let done = e.queued_for + e.running_for + e.results_lag;
            assert!(
                done <= Duration::from_secs(3),
                "{} finishes at {done:?}",
                e.id
            );
            assert!((200..=5000).contains(&e.rows), "{} rows", e.id);
        }
    }

    #[test]
    fn faults_scenario_is_a_finite_soak_with_every_fault() {
        use crate::faults::{FaultKind, planned_fault};
        let s = Scenario::from_toml_str(include_str!("../../../examples/scenarios/faults.toml"))
            .expect("faults.toml is valid");
        let execs: Vec<&SimExecution> = s.tasks.iter().flat_map(|t| &t.executions).collect();
        assert!(execs.len() >= 50, "{} executions", execs.len());
        for e in &execs {
            assert!((100..=3000).contains(&e.rows), "{} rows", e.id);
            let done = e.queued_for + e.running_for + e.results_lag;
            assert!(done <= Duration::from_secs(3), "{} done at {done:?}", e.id);
        }
        let f = &s.faults;
        assert!(f.max_faults_per_execution.is_some(), "a soak must finish");
        assert!(f.stall_for >= Duration::from_secs(1));
        // Every kind is drawn, and each route family sees at least 20% faults.
        for (path, kinds) in [
            ("/api/v1/executions/x", &FaultKind::ALL[..4]),
            (
                "/api/v1/executions/x/media/m-0-9/download",
                &FaultKind::ALL[..4],
            ),
            ("/api/v1/executions/x/results/export", &FaultKind::ALL[..]),
        ] {
            let draws: Vec<Option<FaultKind>> = (0..4000)
                .map(|n| planned_fault(f, s.seed, path, n))
                .collect();
            let faulted = draws.iter().flatten().count();
            assert!(faulted >= 4000 / 5, "{path}: {faulted} of 4000");
            for k in kinds {
                assert!(draws.contains(&Some(*k)), "{path}: no {k:?}");
            }
        }
        // Dirty data is on: currency prices, hostile text, bad rows.
        assert!(
            s.tasks
                .iter()
                .any(|t| t.price_format == PriceFormat::Currency)
        );
        assert!(s.tasks.iter().any(|t| t.hostile));
        assert!(s.tasks.iter().filter(|t| t.bad_row_rate > 0.0).count() >= 2);
        let finals: HashSet<&str> = execs.iter().map(|e| e.final_status.as_str()).collect();
        assert!(finals.contains("completed") && finals.contains("failed"));
    }
}
