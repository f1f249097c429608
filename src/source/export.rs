//! Opening an execution's export: the JSON export or the CSV download, as a byte stream.

use std::time::{Duration, Instant};

use tracing::info;

use crate::api::{ApiError, ApiErrorKind, ExportStream, TitanClient};
use crate::format::ExportFormat;

/// How long a just-completed execution's results may lag behind its status.
const RESULTS_LAG_WINDOW: Duration = Duration::from_secs(60);

/// Opens the export, retrying a `404` for a while: Titan's results can lag the status flip.
pub async fn open_export(
    client: &TitanClient,
    execution_id: &str,
    format: ExportFormat,
) -> Result<ExportStream, ApiError> {
    let deadline = Instant::now() + RESULTS_LAG_WINDOW;
    let mut delay = Duration::from_millis(250);
    loop {
        let opened = match format {
            ExportFormat::Json => client.export(execution_id, format).await,
            ExportFormat::Csv => client.download_csv(execution_id).await,
        };
        match opened {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == ApiErrorKind::NotFound && Instant::now() + delay < deadline => {
                info!(execution_id, "Results not available yet, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}
