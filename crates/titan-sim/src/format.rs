//! The export formats the simulator serves. Its own copy of the connector's enum on
//! purpose: a fake that shared the client's types could not catch a mistake in them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Format of a results export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// A JSON array of row objects (NDJSON is also accepted when decoding).
    /// Titan's default for `results/export`.
    #[default]
    Json,
    /// RFC 4180 CSV with a header row.
    Csv,
}

impl ExportFormat {
    /// The value of the `format` query parameter of `results/export`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Json => "json",
            ExportFormat::Csv => "csv",
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExportFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(ExportFormat::Json),
            "csv" => Ok(ExportFormat::Csv),
            other => Err(format!(
                "unknown export format `{other}` (expected `json` or `csv`)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_insensitively_and_rejects_others() {
        assert_eq!("CSV".parse::<ExportFormat>(), Ok(ExportFormat::Csv));
        assert_eq!("json".parse::<ExportFormat>(), Ok(ExportFormat::Json));
        let err = "xml".parse::<ExportFormat>().unwrap_err();
        assert!(err.contains("`xml`"), "{err}");
    }
}
