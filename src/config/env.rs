//! The only place that reads the process environment.
//!
//! A snapshot is taken once at start-up, so the rest of the program (and the tests) get
//! the environment as a plain value and never call `std::env::var` themselves.

use std::collections::BTreeMap;

/// Names of the environment variables the connector reads.
pub mod vars {
    /// Origin of the Titan Task Service (without `/api/v1`); overrides `api.url`.
    pub const TITAN_API_URL: &str = "TITAN_API_URL";
    /// The API token (JWT or API key). Never accepted on the command line.
    pub const TITAN_TOKEN: &str = "TITAN_TOKEN";
    /// Overrides `store.url`.
    pub const TITAN_CONNECTOR_STORE: &str = "TITAN_CONNECTOR_STORE";
    /// Overrides `run.concurrency`.
    pub const TITAN_CONNECTOR_CONCURRENCY: &str = "TITAN_CONNECTOR_CONCURRENCY";
}

/// The variables the connector cares about, captured once.
#[derive(Clone, Default)]
pub struct Env {
    values: BTreeMap<&'static str, String>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may include the token: list names only.
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl Env {
    /// Reads the known variables from the process environment. Empty values count as unset.
    pub fn from_process() -> Self {
        let mut values = BTreeMap::new();
        for name in [
            vars::TITAN_API_URL,
            vars::TITAN_TOKEN,
            vars::TITAN_CONNECTOR_STORE,
            vars::TITAN_CONNECTOR_CONCURRENCY,
        ] {
            if let Ok(v) = std::env::var(name)
                && !v.trim().is_empty()
            {
                values.insert(name, v);
            }
        }
        Env { values }
    }

    /// An environment built from explicit pairs (tests, embedding).
    pub fn from_pairs<I: IntoIterator<Item = (&'static str, String)>>(pairs: I) -> Self {
        Env {
            values: pairs.into_iter().collect(),
        }
    }

    /// The value of `name`, if set and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}
