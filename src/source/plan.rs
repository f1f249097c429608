//! Planning one task: its schema (a schema file or the task's `output_schema`), the
//! dataset it lands in, and the executions the task list selects.

use std::sync::Arc;

use tracing::info;

use crate::api::{ApiError, Execution, TitanClient};
use crate::schema::TargetSchema;
use crate::source::tasks::{self, ExecutionSelector, TaskSpec};

/// A task resolved against the API: its schema, dataset and the executions to process.
pub struct PlannedTask {
    pub spec: TaskSpec,
    /// The configured dataset, else one derived from the schema's or the task's name
    /// (which the sink's task binding may override: see `sink::binding`).
    pub dataset: String,
    /// The task's name in Titan.
    pub task_name: String,
    pub schema: Arc<TargetSchema>,
    pub executions: Vec<Execution>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Api(ApiError),
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
    #[error("task has no `output_schema` and no schema file is configured for it")]
    NoSchema,
    #[error("execution {execution_id} belongs to task {actual}, not to this task")]
    WrongTask {
        execution_id: String,
        actual: String,
    },
}

pub async fn plan_task(client: &TitanClient, spec: &TaskSpec) -> Result<PlannedTask, PlanError> {
    let task = client.get_task(&spec.id).await.map_err(PlanError::Api)?;
    let schema = match &spec.schema {
        Some(path) => TargetSchema::from_file(path)?,
        None => match &task.output_schema {
            Some(v) => TargetSchema::from_output_schema(v)?,
            None => return Err(PlanError::NoSchema),
        },
    };
    schema.validate()?;
    let dataset = spec
        .dataset
        .clone()
        .or_else(|| {
            schema
                .name
                .clone()
                .filter(|n| tasks::validate_dataset(n).is_ok())
        })
        .unwrap_or_else(|| tasks::dataset_slug(&task.name, &task.id));
    let executions = match &spec.executions {
        ExecutionSelector::New => client
            .list_task_executions(&spec.id)
            .await
            .map_err(PlanError::Api)?,
        ExecutionSelector::Latest => {
            let mut all = client
                .list_task_executions(&spec.id)
                .await
                .map_err(PlanError::Api)?;
            all.sort_by_key(|e| e.created_at.as_deref().and_then(parse_time));
            all.pop().into_iter().collect()
        }
        ExecutionSelector::Ids(ids) => {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let e = client.get_execution(id).await.map_err(PlanError::Api)?;
                if let Some(t) = &e.task_id
                    && t != &spec.id
                {
                    return Err(PlanError::WrongTask {
                        execution_id: id.clone(),
                        actual: t.clone(),
                    });
                }
                out.push(e);
            }
            out
        }
    };
    info!(
        task_id = spec.id,
        dataset,
        executions = executions.len(),
        "Planned task"
    );
    Ok(PlannedTask {
        spec: spec.clone(),
        dataset,
        task_name: task.name.clone(),
        schema: Arc::new(schema),
        executions,
    })
}

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(s).ok()
}
