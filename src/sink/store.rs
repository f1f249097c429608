//! The output store: one `object_store` backend chosen by URL, rooted at the URL's path.
//!
//! Everything the connector writes (Parquet parts, manifests, media) goes through
//! [`Store`], so local disk, S3, GCS and Azure behave the same. Cloud credentials are read
//! here, from the variables each cloud's own tools use, and are never shown in messages.
//! Object keys are built with `object_store::path::Path`, never by string concatenation.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::buffered::BufWriter;
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ClientConfigKey, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use url::{Host, Url};

/// Buffer and part size of [`Store::file_writer`]: S3's and GCS's smallest multipart part.
/// object_store's default of 10 MiB kept up to 10 MiB more of each Parquet part in memory;
/// 5 MiB parts took a 10M-row conversion's peak from 106–127 to 106–109 MiB at the same
/// speed (docs/performance.md).
pub const UPLOAD_PART_BYTES: usize = 5 << 20;

/// Parts of one multipart upload in flight at once. object_store's default of 8 let a
/// 10M-row conversion peak at 126–146 MiB instead of ~110 when the disk took writes slower
/// than the encoder made them; two keep ~130 MB/s of Parquet (both cores' worth) moving to
/// S3.
pub const UPLOAD_CONCURRENCY: usize = 2;

/// Where output goes: the store's URL and its backend options, as resolved from the
/// config (`[store]` or `[media] store`).
#[derive(Clone)]
pub struct StoreConfig {
    /// Resolved URL (`file:///abs/path`, `s3://…`, `memory://`).
    pub url: Url,
    /// Backend options for object_store (credentials among them: never printed).
    pub options: Vec<(String, String)>,
}

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
    /// Set for local disk, whose directories outlive the files deleted from them.
    local: Option<Arc<LocalFileSystem>>,
}

impl Store {
    /// Opens the store for `cfg.url`. Cloud credentials and endpoints come from the
    /// environment variables the cloud's own tools use (`AWS_*`, `GOOGLE_*`, `AZURE_*`),
    /// and `cfg.options` override them. A plain-http endpoint is accepted on loopback
    /// (emulators) and elsewhere only with the backend's `*_allow_http` option.
    pub fn open(cfg: &StoreConfig) -> Result<Store, StoreError> {
        let url = &cfg.url;
        let display = redact_url(url);
        let open_err = |message: String| StoreError::Open {
            url: display.clone(),
            message,
        };
        let prefix = Path::from_url_path(url.path()).map_err(|e| open_err(e.to_string()))?;
        let mut local = None;
        let inner: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => {
                let dir = url
                    .to_file_path()
                    .map_err(|()| open_err("not a local path".to_string()))?;
                std::fs::create_dir_all(&dir)
                    .map_err(|e| open_err(format!("cannot create `{}`: {e}", dir.display())))?;
                let fs = Arc::new(
                    LocalFileSystem::new_with_prefix(&dir).map_err(|e| open_err(e.to_string()))?,
                );
                local = Some(Arc::clone(&fs));
                fs
            }
            "memory" => Arc::new(InMemory::new()),
            "s3" | "s3a" => wrap(open_s3(url, &cfg.options).map_err(open_err)?, &prefix),
            "gs" => wrap(open_gcs(url, &cfg.options).map_err(open_err)?, &prefix),
            // The container is part of the URL; for az:// the path after it is our prefix.
            "az" | "azure" | "abfs" | "abfss" | "adl" => {
                wrap(open_azure(url, &cfg.options).map_err(open_err)?, &prefix)
            }
            other => return Err(open_err(format!("unsupported scheme `{other}`"))),
        };
        Ok(Store {
            inner,
            url: display,
            local,
        })
    }

    /// A store over an existing backend (tests, embedding).
    pub fn from_object_store(inner: Arc<dyn ObjectStore>, url: impl Into<String>) -> Store {
        Store {
            inner,
            url: url.into(),
            local: None,
        }
    }

    /// The backend, for writers that stream (multipart) into it.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.inner)
    }

    /// A streaming writer for a large object (a Parquet part, a compacted file): one put if
    /// it stays under [`UPLOAD_PART_BYTES`], else a multipart upload of parts that size, at
    /// most [`UPLOAD_CONCURRENCY`] in flight.
    pub fn file_writer(&self, path: Path) -> BufWriter {
        BufWriter::with_capacity(self.object_store(), path, UPLOAD_PART_BYTES)
            .with_max_concurrency(UPLOAD_CONCURRENCY)
    }

    /// The store's URL without credentials, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn op_err(
        &self,
        op: &'static str,
        path: &Path,
        source: object_store::Error,
    ) -> StoreError {
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

    /// The size of an object; `None` when it does not exist.
    pub async fn size(&self, path: &Path) -> Result<Option<u64>, StoreError> {
        match self.inner.head(path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.op_err("head", path, e)),
        }
    }

    /// Whether an object exists.
    pub async fn exists(&self, path: &Path) -> Result<bool, StoreError> {
        Ok(self.size(path).await?.is_some())
    }

    /// Every object under `prefix` (recursively).
    pub async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>, StoreError> {
        self.inner
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| self.op_err("list", prefix, e))
    }

    /// The folders directly under `prefix` (one delimited listing, not a walk).
    pub async fn folders(&self, prefix: &Path) -> Result<Vec<Path>, StoreError> {
        self.inner
            .list_with_delimiter(Some(prefix))
            .await
            .map(|l| l.common_prefixes)
            .map_err(|e| self.op_err("list", prefix, e))
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, path: &Path) -> Result<(), StoreError> {
        match self.inner.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.op_err("delete", path, e)),
        }
    }

    /// Removes the empty directories at and under `prefix` on local disk; elsewhere there
    /// are no directories. Best effort: deleting objects leaves their folders behind, and
    /// a run over 10,000 executions would leave 20,000 empty staging folders. A folder
    /// another process is about to write into is recreated by its write.
    pub async fn prune_empty_dirs(&self, prefix: &Path) {
        let Some(dir) = self
            .local
            .as_ref()
            .and_then(|fs| fs.path_to_filesystem(prefix).ok())
        else {
            return;
        };
        let _ = tokio::task::spawn_blocking(move || remove_empty_dirs(&dir)).await;
    }

    /// Moves an object over whatever is at `to`. Cloud stores do this as copy then delete,
    /// so it is not atomic there: until the delete, both names exist.
    pub async fn rename(&self, from: &Path, to: &Path) -> Result<(), StoreError> {
        self.inner
            .rename(from, to)
            .await
            .map_err(|e| self.op_err("rename", from, e))
    }
}

/// Removes `dir` and its subdirectories, deepest first, where they hold no files.
fn remove_empty_dirs(dir: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir); // fails, as it should, when not empty
}

fn wrap<T: ObjectStore>(store: T, prefix: &Path) -> Arc<dyn ObjectStore> {
    if prefix.as_ref().is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, prefix.clone()))
    }
}

/// S3 from the `AWS_*` variables (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, `AWS_REGION`,
/// `AWS_ACCESS_KEY_ID`, ...) as object_store reads them, then the `[store.options]`.
fn open_s3(url: &Url, options: &[(String, String)]) -> Result<object_store::aws::AmazonS3, String> {
    let b = AmazonS3Builder::from_env().with_url(url.as_str());
    let b = with_options(b, options, |b, k, v| b.with_config(k, v))?;
    // AWS_ENDPOINT_URL_S3 wins over AWS_ENDPOINT_URL, as in the AWS CLI and object_store.
    let endpoint = b
        .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
        .or_else(|| b.get_config_value(&AmazonS3ConfigKey::Endpoint));
    let allowed = b.get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp));
    let b = if loopback_http(endpoint.as_deref(), allowed.as_deref(), "aws_allow_http")? {
        b.with_allow_http(true)
    } else {
        b
    };
    b.build().map_err(|e| e.to_string())
}

/// GCS from the `GOOGLE_*` variables (`GOOGLE_APPLICATION_CREDENTIALS`,
/// `GOOGLE_SERVICE_ACCOUNT`, ...), then the `[store.options]`.
fn open_gcs(
    url: &Url,
    options: &[(String, String)],
) -> Result<object_store::gcp::GoogleCloudStorage, String> {
    let b = GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
    let b = with_options(b, options, |b, k, v| b.with_config(k, v))?;
    let allow_key = GoogleConfigKey::Client(ClientConfigKey::AllowHttp);
    let endpoint = b.get_config_value(&GoogleConfigKey::BaseUrl);
    let allowed = b.get_config_value(&allow_key);
    let b = if loopback_http(endpoint.as_deref(), allowed.as_deref(), "google_allow_http")? {
        b.with_config(allow_key, "true")
    } else {
        b
    };
    b.build().map_err(|e| e.to_string())
}

/// Azure Blob from the `AZURE_*` variables object_store reads, the ones the az CLI reads
/// (see [`azure_tool_env`]), then the `[store.options]`.
fn open_azure(
    url: &Url,
    options: &[(String, String)],
) -> Result<object_store::azure::MicrosoftAzure, String> {
    let mut b = MicrosoftAzureBuilder::from_env();
    for (key, value) in azure_tool_env(&|name| std::env::var(name).ok())? {
        // object_store's own names, read by `from_env`, win over the CLI's.
        if key == AzureConfigKey::UseEmulator || b.get_config_value(&key).is_none() {
            b = b.with_config(key, value);
        }
    }
    let b = b.with_url(url.as_str());
    let mut b = with_options(b, options, |b, k, v| b.with_config(k, v))?;
    let emulator = b.get_config_value(&AzureConfigKey::UseEmulator);
    if emulator.as_deref() != Some("true") {
        // In emulator mode object_store picks the endpoint and allows http itself.
        let endpoint = b.get_config_value(&AzureConfigKey::Endpoint);
        let allow_key = AzureConfigKey::Client(ClientConfigKey::AllowHttp);
        let allowed = b.get_config_value(&allow_key);
        if loopback_http(endpoint.as_deref(), allowed.as_deref(), "azure_allow_http")? {
            b = b.with_config(allow_key, "true");
        }
        if let Some(ep) = endpoint.as_deref().filter(|ep| ep.ends_with('/')) {
            // A trailing slash would put an empty segment before the container.
            b = b.with_config(AzureConfigKey::Endpoint, ep.trim_end_matches('/'));
        }
    }
    b.build().map_err(|e| e.to_string())
}

/// Applies `[store.options]`; keys are object_store config keys (`aws_endpoint`,
/// `azure_storage_account_name`, `google_service_account`, ...).
fn with_options<B, K>(
    mut builder: B,
    options: &[(String, String)],
    set: impl Fn(B, K, &str) -> B,
) -> Result<B, String>
where
    K: FromStr<Err = object_store::Error>,
{
    for (k, v) in options {
        let key = k
            .parse()
            .map_err(|e: object_store::Error| format!("option `{k}`: {e}"))?;
        builder = set(builder, key, v);
    }
    Ok(builder)
}

/// Whether plain http must be switched on for `endpoint`: yes for loopback (emulators,
/// local gateways), an error for any other host unless `allow_key` is already true, since
/// credentials and data would travel in clear.
fn loopback_http(
    endpoint: Option<&str>,
    allowed: Option<&str>,
    allow_key: &str,
) -> Result<bool, String> {
    let Some(raw) = endpoint else {
        return Ok(false);
    };
    let url = Url::parse(raw).map_err(|e| format!("endpoint `{raw}` is not a URL: {e}"))?;
    if url.scheme() != "http" || allowed == Some("true") {
        return Ok(false);
    }
    match url.host() {
        Some(host) if is_loopback(&host) => Ok(true),
        _ => Err(format!(
            "endpoint `{}` is plain http to a host that is not loopback; set `{allow_key} = \
             \"true\"` in [store.options] (or {}=true) to allow it",
            redact_url(&url),
            allow_key.to_ascii_uppercase()
        )),
    }
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Settings from the variables the az CLI and Azure SDKs use that object_store's
/// `from_env` does not know: `AZURE_STORAGE_CONNECTION_STRING`, then
/// `AZURE_STORAGE_ACCOUNT` and `AZURE_STORAGE_KEY`. Earlier entries win.
fn azure_tool_env(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(AzureConfigKey, String)>, String> {
    let mut out = Vec::new();
    if let Some(cs) = get("AZURE_STORAGE_CONNECTION_STRING").filter(|s| !s.trim().is_empty()) {
        out = parse_connection_string(&cs)?;
    }
    for (var, key) in [
        ("AZURE_STORAGE_ACCOUNT", AzureConfigKey::AccountName),
        ("AZURE_STORAGE_KEY", AzureConfigKey::AccessKey),
    ] {
        if let Some(v) = get(var).filter(|v| !v.trim().is_empty())
            && !out.iter().any(|(k, _)| *k == key)
        {
            out.push((key, v));
        }
    }
    Ok(out)
}

/// An Azure storage connection string (`AccountName=..;AccountKey=..;BlobEndpoint=..`, or
/// `UseDevelopmentStorage=true` for Azurite on its default port). Errors never echo values:
/// the string holds the account key.
fn parse_connection_string(cs: &str) -> Result<Vec<(AzureConfigKey, String)>, String> {
    let mut fields = std::collections::BTreeMap::new();
    for (i, part) in cs.split(';').enumerate() {
        if part.trim().is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').ok_or_else(|| {
            format!(
                "AZURE_STORAGE_CONNECTION_STRING: part {} is not `Key=Value`",
                i + 1
            )
        })?;
        fields.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    if fields
        .get("usedevelopmentstorage")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Ok(vec![(AzureConfigKey::UseEmulator, "true".to_string())]);
    }
    let mut out = Vec::new();
    let account = fields.get("accountname");
    if let Some(a) = account {
        out.push((AzureConfigKey::AccountName, a.clone()));
    }
    if let Some(k) = fields.get("accountkey") {
        out.push((AzureConfigKey::AccessKey, k.clone()));
    }
    if let Some(sas) = fields.get("sharedaccesssignature") {
        out.push((AzureConfigKey::SasKey, sas.clone()));
    }
    let protocol = fields.get("defaultendpointsprotocol");
    let suffix = fields.get("endpointsuffix");
    if let Some(ep) = fields.get("blobendpoint") {
        out.push((
            AzureConfigKey::Endpoint,
            ep.trim_end_matches('/').to_string(),
        ));
    } else if let (Some(a), true) = (account, protocol.is_some() || suffix.is_some()) {
        let protocol = protocol.map_or("https", String::as_str);
        let suffix = suffix.map_or("core.windows.net", String::as_str);
        out.push((
            AzureConfigKey::Endpoint,
            format!("{protocol}://{a}.blob.{suffix}"),
        ));
    }
    if out.is_empty() {
        return Err("AZURE_STORAGE_CONNECTION_STRING names no account, key or endpoint".into());
    }
    Ok(out)
}

/// Drops any user:password and query (SAS tokens, signatures) from a URL before showing it.
/// Backend options whose values are safe to show: where the store is, never how to get
/// in. Every other option (keys, secrets, tokens, SAS, service-account JSON, and any
/// option we do not know) is shown as `[redacted]`, so a credential never reaches a log
/// line; the URL is shown without user info or query.
const SHOWN_OPTIONS: &[&str] = &[
    "aws_region",
    "region",
    "aws_endpoint",
    "aws_endpoint_url",
    "endpoint",
    "endpoint_url",
    "aws_allow_http",
    "allow_http",
    "aws_virtual_hosted_style_request",
    "virtual_hosted_style_request",
    "aws_bucket",
    "bucket",
    "google_bucket",
    "azure_storage_account_name",
    "account_name",
    "azure_container_name",
    "container_name",
    "azure_use_emulator",
    "use_emulator",
];

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let options: Vec<(&str, Cow<'_, str>)> = self
            .options
            .iter()
            .map(|(k, v)| {
                let shown = SHOWN_OPTIONS.contains(&k.to_ascii_lowercase().as_str());
                let value = if !shown {
                    Cow::Borrowed("[redacted]")
                } else {
                    match Url::parse(v) {
                        // An endpoint may carry user:password or a signed query too.
                        Ok(u)
                            if u.password().is_some()
                                || !u.username().is_empty()
                                || u.query().is_some() =>
                        {
                            Cow::Owned(redact_url(&u))
                        }
                        _ => Cow::Borrowed(v.as_str()),
                    }
                };
                (k.as_str(), value)
            })
            .collect();
        f.debug_struct("StoreConfig")
            .field("url", &redact_url(&self.url))
            .field("options", &options)
            .finish()
    }
}

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

    #[test]
    fn debug_hides_credential_options_and_url_secrets() {
        let cfg = StoreConfig {
            url: Url::parse("s3://user:pw-SECRET@bucket/prefix?sig=SECRET").unwrap(),
            options: vec![
                ("aws_region".into(), "eu-west-1".into()),
                ("aws_access_key_id".into(), "AKIA-SECRET".into()),
                ("aws_secret_access_key".into(), "SECRET-key".into()),
                ("aws_session_token".into(), "SECRET-token".into()),
                ("azure_storage_sas_key".into(), "SECRET-sas".into()),
                ("google_service_account_key".into(), "{SECRET}".into()),
                ("some_future_option".into(), "SECRET?".into()),
                ("AWS_ENDPOINT".into(), "http://127.0.0.1:9000".into()),
            ],
        };
        let shown = format!("{cfg:?} {cfg:#?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert_eq!(
            format!("{cfg:?}"),
            "StoreConfig { url: \"s3://bucket/prefix\", options: [(\"aws_region\", \"eu-west-1\"), \
             (\"aws_access_key_id\", \"[redacted]\"), (\"aws_secret_access_key\", \"[redacted]\"), \
             (\"aws_session_token\", \"[redacted]\"), (\"azure_storage_sas_key\", \"[redacted]\"), \
             (\"google_service_account_key\", \"[redacted]\"), (\"some_future_option\", \"[redacted]\"), \
             (\"AWS_ENDPOINT\", \"http://127.0.0.1:9000\")] }"
        );
    }

    #[test]
    fn debug_hides_credentials_inside_a_shown_endpoint() {
        let cfg = StoreConfig {
            url: Url::parse("s3://bucket/prefix").unwrap(),
            options: vec![(
                "aws_endpoint".into(),
                "https://user:pw-SECRET@minio.internal:9000/?sig=SECRET".into(),
            )],
        };
        assert_eq!(
            format!("{cfg:?}"),
            "StoreConfig { url: \"s3://bucket/prefix\", options: [(\"aws_endpoint\", \
             \"https://minio.internal:9000/\")] }"
        );
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

    #[tokio::test]
    async fn pruning_removes_only_empty_local_folders() {
        let dir = tempfile::tempdir().unwrap();
        let url = Url::from_directory_path(dir.path().join("lake")).unwrap();
        let store = Store::open(&cfg(url.as_str())).unwrap();
        let gone = Path::from("ds/_staging/e1/run-a/part-0.parquet.tmp");
        let kept = Path::from("ds/_staging/e1/run-b/part-0.parquet.tmp");
        for p in [&gone, &kept] {
            store.put(p, Bytes::from_static(b"x")).await.unwrap();
        }
        store.delete(&gone).await.unwrap();
        store.prune_empty_dirs(&Path::from("ds/_staging/e1")).await;
        let staging = dir.path().join("lake/ds/_staging/e1");
        assert!(!staging.join("run-a").exists());
        assert!(staging.join("run-b/part-0.parquet.tmp").exists());
        store.delete(&kept).await.unwrap();
        store.prune_empty_dirs(&Path::from("ds/_staging/e1")).await;
        assert!(!staging.exists());
        assert!(
            dir.path().join("lake/ds/_staging").exists(),
            "above the prefix is kept"
        );
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

    fn s3_cfg(options: &[(&str, &str)]) -> StoreConfig {
        StoreConfig {
            url: Url::parse("s3://bucket/prefix").unwrap(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn plain_http_is_switched_on_only_for_loopback_endpoints() {
        for ep in [
            "http://127.0.0.1:9000",
            "http://127.8.9.10",
            "http://localhost:4566/",
            "http://[::1]:10000/devstoreaccount1",
        ] {
            assert_eq!(
                loopback_http(Some(ep), Some("false"), "aws_allow_http"),
                Ok(true),
                "{ep}"
            );
        }
        assert_eq!(loopback_http(None, None, "aws_allow_http"), Ok(false));
        assert_eq!(
            loopback_http(Some("https://s3.example"), Some("false"), "aws_allow_http"),
            Ok(false)
        );
        // Already allowed by the user: nothing to switch on, no error.
        assert_eq!(
            loopback_http(
                Some("http://minio.lan:9000"),
                Some("true"),
                "aws_allow_http"
            ),
            Ok(false)
        );
        let err = loopback_http(
            Some("http://minio.lan:9000"),
            Some("false"),
            "aws_allow_http",
        )
        .unwrap_err();
        assert!(
            err.contains("`http://minio.lan:9000/`")
                && err.contains("aws_allow_http = \"true\"")
                && err.contains("AWS_ALLOW_HTTP=true"),
            "{err}"
        );
        let err = loopback_http(Some("not a url"), None, "aws_allow_http").unwrap_err();
        assert!(
            err.starts_with("endpoint `not a url` is not a URL"),
            "{err}"
        );
    }

    #[test]
    fn s3_options_reach_the_builder_and_plain_http_off_loopback_is_refused() {
        assert!(
            Store::open(&s3_cfg(&[
                ("aws_endpoint", "http://127.0.0.1:1"),
                ("aws_access_key_id", "k"),
                ("aws_secret_access_key", "s"),
            ]))
            .is_ok()
        );
        let err = Store::open(&s3_cfg(&[
            ("aws_endpoint_url", "http://s3.internal:9000"),
            ("aws_access_key_id", "k"),
            ("aws_secret_access_key", "s"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("not loopback"), "{err}");
        assert!(
            Store::open(&s3_cfg(&[
                ("aws_endpoint_url", "http://s3.internal:9000"),
                ("aws_allow_http", "true"),
                ("aws_access_key_id", "k"),
                ("aws_secret_access_key", "s"),
            ]))
            .is_ok()
        );
        let err = Store::open(&s3_cfg(&[("aws_no_such_key", "1")])).unwrap_err();
        assert!(
            err.to_string().contains("option `aws_no_such_key`"),
            "{err}"
        );
    }

    const AZURITE_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    #[test]
    fn azurite_connection_string_gives_account_key_and_path_style_endpoint() {
        let cs = format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};\
             BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;"
        );
        assert_eq!(
            parse_connection_string(&cs).unwrap(),
            vec![
                (AzureConfigKey::AccountName, "devstoreaccount1".to_string()),
                (AzureConfigKey::AccessKey, AZURITE_KEY.to_string()),
                (
                    AzureConfigKey::Endpoint,
                    "http://127.0.0.1:10000/devstoreaccount1".to_string()
                ),
            ]
        );
        assert_eq!(
            parse_connection_string("UseDevelopmentStorage=true").unwrap(),
            vec![(AzureConfigKey::UseEmulator, "true".to_string())]
        );
        assert_eq!(
            parse_connection_string(
                "accountname=acct;SharedAccessSignature=sv=2024&sig=abc%3D;EndpointSuffix=core.chinacloudapi.cn"
            )
            .unwrap(),
            vec![
                (AzureConfigKey::AccountName, "acct".to_string()),
                (AzureConfigKey::SasKey, "sv=2024&sig=abc%3D".to_string()),
                (
                    AzureConfigKey::Endpoint,
                    "https://acct.blob.core.chinacloudapi.cn".to_string()
                ),
            ]
        );
    }

    #[test]
    fn malformed_connection_string_is_refused_without_echoing_it() {
        let err = parse_connection_string("AccountName=a;SECRETKEYWITHOUTEQUALS").unwrap_err();
        assert_eq!(
            err,
            "AZURE_STORAGE_CONNECTION_STRING: part 2 is not `Key=Value`"
        );
        assert!(parse_connection_string("Foo=bar").is_err());
    }

    #[test]
    fn az_cli_variables_fill_in_and_the_connection_string_wins() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let got = azure_tool_env(&env(&[
            ("AZURE_STORAGE_ACCOUNT", "cli-acct"),
            ("AZURE_STORAGE_KEY", "cli-key"),
        ]))
        .unwrap();
        assert_eq!(
            got,
            vec![
                (AzureConfigKey::AccountName, "cli-acct".to_string()),
                (AzureConfigKey::AccessKey, "cli-key".to_string()),
            ]
        );
        let got = azure_tool_env(&env(&[
            ("AZURE_STORAGE_ACCOUNT", "cli-acct"),
            ("AZURE_STORAGE_KEY", "cli-key"),
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                "AccountName=cs-acct;BlobEndpoint=http://127.0.0.1:1/cs-acct",
            ),
        ]))
        .unwrap();
        assert_eq!(
            got,
            vec![
                (AzureConfigKey::AccountName, "cs-acct".to_string()),
                (
                    AzureConfigKey::Endpoint,
                    "http://127.0.0.1:1/cs-acct".to_string()
                ),
                (AzureConfigKey::AccessKey, "cli-key".to_string()),
            ]
        );
        assert!(azure_tool_env(&env(&[])).unwrap().is_empty());
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
