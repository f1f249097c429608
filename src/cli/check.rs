//! `titan-connector check`: everything that can go wrong before a run, checked up front
//! with a message that says what to fix.

use bytes::Bytes;
use object_store::path::Path;

use titan_connector::api::{ApiError, TitanClient};
use titan_connector::config::Config;
use titan_connector::schema::TargetSchema;
use titan_connector::sink::store::{Store, StoreError};

/// A failed check.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("schema of task {task_id}: {source}")]
    Schema {
        task_id: String,
        #[source]
        source: titan_connector::schema::SchemaError,
    },
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs the checks, printing one line per success to stdout.
pub async fn check(cfg: &Config, out: &mut impl std::io::Write) -> Result<(), CheckError> {
    let _ = writeln!(
        out,
        "ok: config `{}` ({} task(s))",
        cfg.path.display(),
        cfg.tasks.len()
    );
    for spec in &cfg.tasks {
        if let Some(path) = &spec.schema {
            let schema = TargetSchema::from_file(path)
                .and_then(|s| s.validate().map(|()| s))
                .map_err(|source| CheckError::Schema {
                    task_id: spec.id.clone(),
                    source,
                })?;
            let _ = writeln!(
                out,
                "ok: schema `{}` ({} columns)",
                path.display(),
                schema.columns.len()
            );
        }
    }
    let client = TitanClient::new(cfg.api.clone())?;
    for spec in &cfg.tasks {
        let task = client.get_task(&spec.id).await?;
        if spec.schema.is_none() {
            let derived = task
                .output_schema
                .as_ref()
                .map(TargetSchema::from_output_schema)
                .transpose()
                .map_err(|source| CheckError::Schema {
                    task_id: spec.id.clone(),
                    source,
                })?;
            if derived.is_none() {
                let _ = writeln!(
                    out,
                    "warning: task {} has no output_schema; give it a schema file",
                    spec.id
                );
            }
        }
        let _ = writeln!(out, "ok: task {} `{}` readable", spec.id, task.name);
    }
    let _ = writeln!(out, "ok: token accepted by {}", client.base_url());
    let store = Store::open(&cfg.store)?;
    let probe = Path::from(format!(
        "_titan_check/{}.probe",
        uuid::Uuid::new_v4().simple()
    ));
    store
        .put(&probe, Bytes::from_static(b"titan-connector check\n"))
        .await?;
    store.delete(&probe).await?;
    let _ = writeln!(out, "ok: store {} writable", store.url());
    Ok(())
}
