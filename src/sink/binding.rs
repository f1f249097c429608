//! Which dataset a task's executions land in, fixed at the task's first ingest.
//!
//! A task without a configured `dataset` gets a derived one (its schema's name, else a slug
//! of the task's name). Users rename tasks and schemas; a derived name that followed them
//! would re-ingest a task's whole history into a new folder. So the first run that ingests
//! a task records its dataset in `_titan/tasks/<task>.json` at the store's root (created
//! only if absent, as leases are), and every later run uses the recorded one. A dataset
//! configured explicitly always wins and is recorded too, so removing it later keeps the
//! folder.

use object_store::path::{Path, PathPart};
use object_store::{PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::store::{Store, StoreError};

/// Folder of the task bindings, at the store's root.
pub const BINDINGS_DIR: &str = "_titan";

/// Where `task_id`'s binding is stored.
pub fn binding_path(task_id: &str) -> Path {
    Path::from_iter([
        PathPart::from(BINDINGS_DIR),
        PathPart::from("tasks"),
        PathPart::from(format!("{task_id}.json")),
    ])
}

/// The stored record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub task_id: String,
    pub dataset: String,
    /// The task's name when it was bound, for people reading the store.
    #[serde(default)]
    pub task_name: String,
    pub bound_at: String,
}

/// The dataset for `task_id`: the configured one if any, else the recorded one, else
/// `derived` (recorded now, unless `record` is false as in a dry run).
pub async fn dataset_for(
    store: &Store,
    task_id: &str,
    task_name: &str,
    configured: Option<&str>,
    derived: &str,
    record: bool,
) -> Result<String, StoreError> {
    let path = binding_path(task_id);
    let existing = read(store, &path).await?;
    if let (Some(existing), Some(configured)) = (&existing, configured)
        && existing.dataset == configured
    {
        // Already recorded: no write, so a re-run changes nothing in the store.
        return Ok(existing.dataset.clone());
    }
    if let Some(existing) = existing
        && configured.is_none()
    {
        if existing.dataset != derived {
            info!(
                task_id,
                dataset = existing.dataset,
                derived,
                "Task keeps the dataset of its first ingest"
            );
        }
        return Ok(existing.dataset);
    }
    let dataset = configured.unwrap_or(derived).to_string();
    if record {
        let binding = Binding {
            task_id: task_id.to_string(),
            dataset: dataset.clone(),
            task_name: task_name.to_string(),
            bound_at: crate::report::now_rfc3339(),
        };
        let bytes = bytes::Bytes::from(serde_json::to_vec_pretty(&binding).unwrap_or_default());
        let opts = PutOptions {
            // A configured dataset replaces the record; a derived one only fills a gap,
            // and loses to a process that bound the task first.
            mode: if configured.is_some() {
                PutMode::Overwrite
            } else {
                PutMode::Create
            },
            ..PutOptions::default()
        };
        match store
            .object_store()
            .put_opts(&path, PutPayload::from(bytes.clone()), opts)
            .await
        {
            Ok(_) => {}
            // A store without conditional create still records the binding, unguarded:
            // without it a renamed task would move to a new folder.
            Err(object_store::Error::NotImplemented { .. }) => store.put(&path, bytes).await?,
            Err(object_store::Error::AlreadyExists { .. }) => {
                if let Some(winner) = read(store, &path).await? {
                    return Ok(winner.dataset);
                }
            }
            Err(e) => return Err(store.op_err("bind dataset", &path, e)),
        }
    }
    Ok(dataset)
}

/// The binding at `path`; an unreadable record counts as none (it is rewritten).
async fn read(store: &Store, path: &Path) -> Result<Option<Binding>, StoreError> {
    Ok(store
        .get_opt(path)
        .await?
        .and_then(|b| serde_json::from_slice(&b).ok()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;

    use super::*;

    fn store() -> Store {
        Store::from_object_store(Arc::new(InMemory::new()), "memory://")
    }

    /// A store without conditional create (`PutMode::Create` is `NotImplemented`).
    #[derive(Debug)]
    struct NoCreate(InMemory);

    impl std::fmt::Display for NoCreate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("NoCreate")
        }
    }

    #[async_trait::async_trait]
    impl object_store::ObjectStore for NoCreate {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            if opts.mode == PutMode::Create {
                return Err(object_store::Error::NotImplemented {
                    operation: "put if absent".into(),
                    implementer: "NoCreate".into(),
                });
            }
            self.0.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.0.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.0.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
            self.0.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
        {
            self.0.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<object_store::ListResult> {
            self.0.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.0.copy_opts(from, to, options).await
        }
    }

    #[tokio::test]
    async fn a_store_without_conditional_create_still_records_the_binding() {
        let s = Store::from_object_store(Arc::new(NoCreate(InMemory::new())), "memory://");
        assert_renamed_task_keeps_its_first_dataset(&s).await;
    }

    /// Binds `t1` as "Shoes", then asks again after a rename to "Sneakers": both answers
    /// must be the first dataset, `shoes`.
    async fn assert_renamed_task_keeps_its_first_dataset(s: &Store) {
        let first = dataset_for(s, "t1", "Shoes", None, "shoes", true)
            .await
            .unwrap();
        assert_eq!(first, "shoes");
        // The task was renamed: its executions still land in `shoes`.
        let later = dataset_for(s, "t1", "Sneakers", None, "sneakers", true)
            .await
            .unwrap();
        assert_eq!(later, "shoes");
    }

    #[tokio::test]
    async fn a_derived_dataset_is_fixed_at_the_first_ingest() {
        let s = store();
        assert_renamed_task_keeps_its_first_dataset(&s).await;
        let b: Binding =
            serde_json::from_slice(&s.get_opt(&binding_path("t1")).await.unwrap().unwrap())
                .unwrap();
        assert_eq!(
            (b.dataset.as_str(), b.task_name.as_str()),
            ("shoes", "Shoes")
        );
        // Other tasks are bound on their own.
        let other = dataset_for(&s, "t2", "Hats", None, "hats", true)
            .await
            .unwrap();
        assert_eq!(other, "hats");
    }

    #[tokio::test]
    async fn a_configured_dataset_wins_and_is_kept_when_removed() {
        let s = store();
        dataset_for(&s, "t1", "Shoes", None, "shoes", true)
            .await
            .unwrap();
        let set = dataset_for(&s, "t1", "Shoes", Some("footwear"), "shoes", true)
            .await
            .unwrap();
        assert_eq!(set, "footwear");
        let removed = dataset_for(&s, "t1", "Shoes", None, "shoes", true)
            .await
            .unwrap();
        assert_eq!(removed, "footwear");
    }

    #[tokio::test]
    async fn a_dry_run_records_nothing() {
        let s = store();
        let d = dataset_for(&s, "t1", "Shoes", None, "shoes", false)
            .await
            .unwrap();
        assert_eq!(d, "shoes");
        assert!(s.get_opt(&binding_path("t1")).await.unwrap().is_none());
    }
}
