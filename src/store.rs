//! The output store: one `object_store` backend chosen by URL, rooted at the URL's path.
//!
//! Everything the connector writes (Parquet parts, manifests, media) goes through
//! [`Store`], so local disk, S3, GCS and Azure behave the same. Object keys are built with
//! `object_store::path::Path`, never by string concatenation of untrusted input.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use url::Url;

use crate::config::StoreConfig;

/// Errors of the store layer; each names the store and the object.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open store `{url}`: {message}")]
    Open { url: String, message: String },
    #[error("store `{url}`: {op} `{path}` failed: {source}")]
    Op {
        url: String,
        op: &'static str,
        path: String,
        #[source]
        source: Box<object_store::Error>,
    },
}

/// A store rooted at the configured URL.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    url: String,
}

impl Store {
    /// Opens the store for `cfg.url`. Cloud credentials come from the environment variables
    /// the cloud's own tools use (`AWS_*`, `GOOGLE_*`, `AZURE_*`), then from `cfg.options`.
    pub fn open(cfg: &StoreConfig) -> Result<Store, StoreError> {
        let url = &cfg.url;
        let display = redact_url(url);
        let open_err = |message: String| StoreError::Open {
            url: display.clone(),
            message,
        };
        let prefix = Path::from_url_path(url.path()).map_err(|e| open_err(e.to_string()))?;
        let inner: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => {
                let dir = url
                    .to_file_path()
                    .map_err(|()| open_err("not a local path".to_string()))?;
                std::fs::create_dir_all(&dir)
                    .map_err(|e| open_err(format!("cannot create `{}`: {e}", dir.display())))?;
                Arc::new(
                    LocalFileSystem::new_with_prefix(&dir).map_err(|e| open_err(e.to_string()))?,
                )
            }
            "memory" => Arc::new(InMemory::new()),
            "s3" | "s3a" => {
                let mut b = AmazonS3Builder::from_env().with_url(url.as_str());
                for (k, v) in &cfg.options {
                    let key = k
                        .parse()
                        .map_err(|e: object_store::Error| open_err(e.to_string()))?;
                    b = b.with_config(key, v);
                }
                wrap(b.build().map_err(|e| open_err(e.to_string()))?, &prefix)
            }
            "gs" => {
                let mut b = GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
                for (k, v) in &cfg.options {
                    let key = k
                        .parse()
                        .map_err(|e: object_store::Error| open_err(e.to_string()))?;
                    b = b.with_config(key, v);
                }
                wrap(b.build().map_err(|e| open_err(e.to_string()))?, &prefix)
            }
            "az" | "azure" | "abfs" | "abfss" | "adl" => {
                let mut b = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
                for (k, v) in &cfg.options {
                    let key = k
                        .parse()
                        .map_err(|e: object_store::Error| open_err(e.to_string()))?;
                    b = b.with_config(key, v);
                }
                // The container is part of the URL; for az:// the path after it is our prefix.
                wrap(b.build().map_err(|e| open_err(e.to_string()))?, &prefix)
            }
            other => return Err(open_err(format!("unsupported scheme `{other}`"))),
        };
        Ok(Store {
            inner,
            url: display,
        })
    }

    /// A store over an existing backend (tests, embedding).
    pub fn from_object_store(inner: Arc<dyn ObjectStore>, url: impl Into<String>) -> Store {
        Store {
            inner,
            url: url.into(),
        }
    }

    /// The backend, for writers that stream (multipart) into it.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.inner)
    }

    /// The store's URL without credentials, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn op_err(&self, op: &'static str, path: &Path, source: object_store::Error) -> StoreError {
        StoreError::Op {
            url: self.url.clone(),
            op,
            path: path.to_string(),
            source: Box::new(source),
        }
    }

    /// Writes a whole small object atomically.
    pub async fn put(&self, path: &Path, bytes: Bytes) -> Result<(), StoreError> {
        self.inner
            .put(path, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.op_err("put", path, e))
    }

    /// Reads a whole small object; `None` when it does not exist.
    pub async fn get_opt(&self, path: &Path) -> Result<Option<Bytes>, StoreError> {
        match self.inner.get(path).await {
            Ok(r) => r
                .bytes()
                .await
                .map(Some)
                .map_err(|e| self.op_err("read", path, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.op_err("get", path, e)),
        }
    }

    /// Whether an object exists.
    pub async fn exists(&self, path: &Path) -> Result<bool, StoreError> {
        match self.inner.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.op_err("head", path, e)),
        }
    }

    /// Every object under `prefix` (recursively).
    pub async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>, StoreError> {
        self.inner
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| self.op_err("list", prefix, e))
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, path: &Path) -> Result<(), StoreError> {
        match self.inner.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.op_err("delete", path, e)),
        }
    }
}

fn wrap<T: ObjectStore>(store: T, prefix: &Path) -> Arc<dyn ObjectStore> {
    if prefix.as_ref().is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, prefix.clone()))
    }
}

/// Drops any user:password and query (SAS tokens, signatures) from a URL before showing it.
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> StoreConfig {
        StoreConfig {
            url: Url::parse(url).unwrap(),
            options: vec![],
        }
    }

    #[tokio::test]
    async fn local_store_is_rooted_at_the_url_path() {
        let dir = tempfile::tempdir().unwrap();
        let url = Url::from_directory_path(dir.path().join("lake")).unwrap();
        let store = Store::open(&cfg(url.as_str())).unwrap();
        let p = Path::from("ds/task_id=1/a.json");
        store.put(&p, Bytes::from_static(b"{}")).await.unwrap();
        let on_disk = std::fs::read(dir.path().join("lake/ds/task_id=1/a.json")).unwrap();
        assert_eq!(on_disk, b"{}");
        assert_eq!(
            store.get_opt(&p).await.unwrap().unwrap(),
            Bytes::from_static(b"{}")
        );
        assert!(store.get_opt(&Path::from("nope")).await.unwrap().is_none());
        let listed = store.list(&Path::from("ds")).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].location, p);
        store.delete(&p).await.unwrap();
        store.delete(&p).await.unwrap();
        assert!(!store.exists(&p).await.unwrap());
    }

    #[test]
    fn urls_are_shown_without_secrets() {
        let u = Url::parse("https://user:pw@acct.blob.example/c/p?sig=SECRET").unwrap();
        let shown = redact_url(&u);
        assert!(
            !shown.contains("SECRET") && !shown.contains("pw"),
            "{shown}"
        );
    }

    #[test]
    fn unknown_scheme_is_refused() {
        let err = Store::open(&cfg("ftp://x/y")).unwrap_err();
        assert!(
            err.to_string().contains("unsupported scheme `ftp`"),
            "{err}"
        );
    }
}
