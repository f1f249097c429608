//! What can go wrong in a run, and which failures end it: [`IngestError`] fails one
//! execution (recorded in the report, the others go on); [`RunError`] ends the run (a
//! rejected token dooms every request, an unreachable API while planning, a store that
//! cannot be read).

use crate::api::{ApiError, ApiErrorKind};
use crate::decode::DecodeError;
use crate::media::MediaError;
use crate::run::transcode::{SourceError, TranscodeError};
use crate::schema::EvolutionError;
use crate::sink::SinkError;
use crate::sink::parquet::WriteError;
use crate::sink::store::StoreError;
use crate::source::waiter::WaitError;

/// Errors that end a whole run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Titan rejected the token while fetching media.
    #[error("fetching media of execution {execution_id}")]
    MediaAuth {
        execution_id: String,
        #[source]
        source: MediaError,
    },
    /// Interrupted commits of a crashed run could not be finished or undone: planning
    /// over them could ingest an execution twice.
    #[error("finishing interrupted commits of dataset `{dataset}`")]
    Recover {
        dataset: String,
        #[source]
        source: SinkError,
    },
}

/// Why one execution could not be ingested.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IngestError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Wait(#[from] WaitError),
    #[error("export of execution {execution_id}: {source}")]
    Transcode {
        execution_id: String,
        #[source]
        source: TranscodeError,
    },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("interrupted")]
    Interrupted,
    #[error(
        "execution {execution_id}: {source} (the task's `extra_fields`/`missing_fields` policy)"
    )]
    Evolution {
        execution_id: String,
        #[source]
        source: EvolutionError,
    },
    #[error(
        "execution {execution_id}: the export held {read} records but Titan reports {expected}"
    )]
    CountMismatch {
        execution_id: String,
        read: u64,
        expected: u64,
    },
}

/// Downloads of one export before its execution is given up for this run (as many as the
/// client's attempts per request: a body can fail in as many ways as a request).
pub(crate) const EXPORT_ATTEMPTS: u32 = 6;

impl IngestError {
    pub(crate) fn transcode(execution_id: &str, source: TranscodeError) -> Self {
        IngestError::Transcode {
            execution_id: execution_id.to_string(),
            source,
        }
    }

    /// Failures that a fresh download of the same export can cure: a broken or stalled
    /// body, a truncated or non-data body (an HTML error page on 200), a count mismatch.
    pub(crate) fn is_transient_export_failure(&self) -> bool {
        match self {
            IngestError::Transcode { source, .. } => match source {
                TranscodeError::Source(SourceError::Api(e)) => e.is_retryable(),
                TranscodeError::Decode(
                    DecodeError::Truncated { .. }
                    | DecodeError::NotData { .. }
                    | DecodeError::Empty { .. },
                ) => true,
                _ => false,
            },
            // An HTML page or an error envelope on 200 (a proxy's error page) is transient.
            IngestError::Api(e) => e.is_retryable() || e.kind() == ApiErrorKind::Protocol,
            IngestError::CountMismatch { .. } => true,
            _ => false,
        }
    }

    /// The kind of the API failure behind this one, if any.
    pub(crate) fn api_kind(&self) -> Option<ApiErrorKind> {
        match self {
            IngestError::Api(e) => Some(e.kind()),
            IngestError::Wait(WaitError::Api { source, .. }) => Some(source.kind()),
            IngestError::Transcode { source, .. } => match source {
                TranscodeError::Source(SourceError::Api(e)) => Some(e.kind()),
                TranscodeError::Media(e) => e.api_error().map(ApiError::kind),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whose failure this is: the run's for an authentication failure (with a rejected
    /// token no other execution can succeed either), else this execution's alone.
    pub(crate) fn severity(self) -> Severity {
        if self.api_kind() != Some(ApiErrorKind::Auth) {
            return Severity::Execution(self);
        }
        match self {
            IngestError::Api(a) | IngestError::Wait(WaitError::Api { source: a, .. }) => {
                Severity::Run(RunError::Api(a))
            }
            IngestError::Transcode {
                source: TranscodeError::Source(SourceError::Api(a)),
                ..
            } => Severity::Run(RunError::Api(a)),
            IngestError::Transcode {
                execution_id,
                source: TranscodeError::Media(m),
            } => Severity::Run(RunError::MediaAuth {
                execution_id,
                source: m,
            }),
            other => Severity::Execution(other),
        }
    }
}

/// What a failure ends: see [`IngestError::severity`].
pub(crate) enum Severity {
    Run(RunError),
    Execution(IngestError),
}
