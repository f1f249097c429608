//! The task list: which Titan tasks a run ingests and, per task, how.
//!
//! A plain file (one task id per line, `#` comments) and `[[tasks]]` tables in the config
//! both produce [`TaskSpec`]s; the config module merges them.

use std::path::{Path, PathBuf};

use crate::format::ExportFormat;

/// Which executions of a task a run ingests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ExecutionSelector {
    /// Every execution that has no manifest in the store yet (waiting for unfinished ones).
    #[default]
    New,
    /// Only the most recently created execution.
    Latest,
    /// Exactly these executions.
    Ids(Vec<String>),
}

/// One task to ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    pub id: String,
    /// Dataset folder; `None` → derived from the task's name.
    pub dataset: Option<String>,
    /// Schema file; `None` → derived from the task's `output_schema`.
    pub schema: Option<PathBuf>,
    pub executions: ExecutionSelector,
    pub format: ExportFormat,
    /// Rows that don't fit the schema: fail, skip or quarantine (default), and the
    /// largest share of rejected rows tolerated.
    pub bad_rows: crate::map::RejectPolicy,
    /// Fields the data has that the schema lacks, and the reverse.
    pub evolution: crate::schema::EvolutionPolicy,
}

impl TaskSpec {
    /// A task from a plain list: every option at its default.
    pub fn with_defaults(
        id: String,
        format: ExportFormat,
        bad_rows: crate::map::RejectPolicy,
        evolution: crate::schema::EvolutionPolicy,
    ) -> Self {
        TaskSpec {
            id,
            dataset: None,
            schema: None,
            executions: ExecutionSelector::New,
            format,
            bad_rows,
            evolution,
        }
    }
}

/// One of N workers sharing a run: a worker keeps the executions whose stable hash
/// falls in its slot, so N processes on N machines split the work with no coordination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based, as Airflow's map index and Kubernetes' job completion index are.
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Whether this shard owns `execution_id`. FNV-1a: stable across builds and platforms.
    pub fn owns(&self, execution_id: &str) -> bool {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in execution_id.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `I/N` with `0 <= I < N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a shard: use I/N with 0 <= I < N, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// A bad line in a task-list file.
#[derive(Debug, thiserror::Error)]
pub enum TaskListError {
    #[error("cannot read task list `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("task list `{path}`, line {line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Reads a plain task list.
pub fn read_task_list(path: &Path) -> Result<Vec<String>, TaskListError> {
    let text = std::fs::read_to_string(path).map_err(|source| TaskListError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_task_list(&text, path)
}

/// Parses a plain task list: one id per line; blank lines and `#` comments (whole-line or
/// trailing) ignored; duplicates dropped keeping the first.
pub fn parse_task_list(text: &str, path: &Path) -> Result<Vec<String>, TaskListError> {
    let mut ids: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or("").trim();
        let content = content.trim_start_matches('\u{feff}');
        if content.is_empty() {
            continue;
        }
        validate_task_id(content).map_err(|message| TaskListError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        })?;
        if !ids.iter().any(|x| x == content) {
            ids.push(content.to_string());
        }
    }
    Ok(ids)
}

/// Ids are opaque to us, but they end up in URLs and paths: no whitespace or controls,
/// no `/`, bounded length.
pub fn validate_task_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("an id is empty".to_string());
    }
    if id.len() > 200 {
        return Err(format!(
            "id `{}…` is longer than 200 bytes",
            &id[..id.floor_char_boundary(40)]
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '\\' | '?' | '#' | '%'))
    {
        return Err(format!(
            "id `{}` contains {c:?}; ids are single words without whitespace, `/`, `\\`, `?`, `#` or `%`",
            id.escape_debug()
        ));
    }
    if id == "." || id == ".." {
        return Err(format!("`{id}` is not a valid id"));
    }
    Ok(())
}

/// Dataset names become the top folder of the store: a conservative character set.
pub fn validate_dataset(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 100 {
        return Err("must be 1 to 100 characters".to_string());
    }
    if name.starts_with(['.', '_']) {
        return Err(format!(
            "`{name}` must not start with `.` or `_` (readers skip such folders)"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "`{name}` may only contain ASCII letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(())
}

/// The default dataset name for a task: a lowercase slug of its name, or `task-<id>`.
pub fn dataset_slug(task_name: &str, task_id: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in task_name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
            dash = false;
        } else if !out.is_empty() && !dash {
            out.push('_');
            dash = true;
        }
        if out.len() >= 64 {
            break;
        }
    }
    let out = out.trim_end_matches('_').to_string();
    if out.is_empty() {
        let id: String = task_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        format!("task-{id}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_list_skips_comments_blanks_and_duplicates() {
        let text = "\u{feff}# nightly tasks\n\n7f1c-aaa   # products\n  b2\r\n7f1c-aaa\n";
        let ids = parse_task_list(text, Path::new("t.tasks")).unwrap();
        assert_eq!(ids, vec!["7f1c-aaa".to_string(), "b2".to_string()]);
    }

    #[test]
    fn task_list_names_the_bad_line() {
        let err = parse_task_list("ok\nbad id\n", Path::new("list.tasks")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("task list `list.tasks`, line 2: id `bad id`"),
            "{msg}"
        );
    }

    #[test]
    fn ids_that_could_escape_a_path_are_refused() {
        for bad in ["../x", "a/b", "..", "a\0b", "a%2f", "x?y"] {
            assert!(validate_task_id(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_task_id("550e8400-e29b-41d4-a716-446655440000").is_ok());
    }

    #[test]
    fn shards_partition_executions_exactly() {
        let shards: Vec<Shard> = (0..3).map(|i| format!("{i}/3").parse().unwrap()).collect();
        let mut per_shard = [0usize; 3];
        for n in 0..3000 {
            let id = format!("exec-{n}");
            let owners: Vec<usize> = (0..3).filter(|&i| shards[i].owns(&id)).collect();
            assert_eq!(owners.len(), 1, "{id} owned by {owners:?}");
            per_shard[owners[0]] += 1;
        }
        assert!(per_shard.iter().all(|&c| c > 800), "{per_shard:?}");
        // Stable: the same id always lands in the same shard.
        assert!("1/3".parse::<Shard>().unwrap().owns("exec-1") == shards[1].owns("exec-1"));
        for bad in ["3/3", "1", "a/2", "0/0", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn dataset_slug_is_readable_and_safe() {
        assert_eq!(
            dataset_slug("Product monitor (EU)", "x"),
            "product_monitor_eu"
        );
        assert_eq!(dataset_slug("東京", "ab/c"), "task-ab_c");
        assert!(validate_dataset(&dataset_slug("Product monitor", "x")).is_ok());
        assert!(validate_dataset("_manifests").is_err());
        assert!(validate_dataset("a/b").is_err());
    }
}
