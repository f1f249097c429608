//! Exit codes, documented in the README; orchestrators branch on them.

/// What a process exit means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything selected was ingested (or already was).
    Ok = 0,
    /// An unexpected error: the store failed, a bug. Retrying may help.
    Failure = 1,
    /// Bad command line or configuration (file, schema, task list, missing token).
    Usage = 2,
    /// The run finished, but some executions failed or had no results, or some tasks could
    /// not be planned. The report says which; a re-run retries the failed ones.
    Partial = 3,
    /// Titan refused the token (401) or its scopes (403).
    Auth = 4,
    /// Titan could not be reached (connection, DNS, TLS, timeouts after retries).
    Unreachable = 5,
    /// Stopped by SIGINT/SIGTERM before finishing.
    Interrupted = 130,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}
