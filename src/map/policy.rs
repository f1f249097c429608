//! What to do with rows that do not map: fail, skip or quarantine, and the reject-ratio
//! limit. Counting lives here so the pipeline, the report and the manifest agree.
//!
//! Invariant: [`RejectStats`] counts rows (a row rejected in two columns counts once) and
//! every counted row is either written or rejected, never both.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Reject;

/// Per-task handling of rows that cannot be mapped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadRowPolicy {
    /// The first bad row fails the execution (error names row, column, value, expected type).
    Fail,
    /// Bad rows are dropped and counted.
    Skip,
    /// Bad rows are dropped, counted, and written to `_rejects/` as JSON Lines.
    #[default]
    Quarantine,
}

/// The bad-row policy and its limit, as configured for a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectPolicy {
    #[serde(default)]
    pub on_bad_row: BadRowPolicy,
    /// Fail the execution when rejected rows / rows read exceeds this (0.0–1.0). `None`
    /// means no limit. Ignored under `Fail`.
    #[serde(default)]
    pub max_reject_ratio: Option<f64>,
}

/// The reject limit was exceeded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{rejected} of {rows} rows rejected ({:.2}%), more than the allowed {:.2}%",
    ratio * 100.0,
    max_ratio * 100.0
)]
pub struct RejectRatioExceeded {
    pub rejected: u64,
    pub rows: u64,
    pub ratio: f64,
    pub max_ratio: f64,
}

/// Running counts of one execution's rows and rejects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RejectStats {
    /// Raw rows seen by the mapper.
    pub rows: u64,
    /// Rows rejected (each row once, however many columns failed).
    pub rejected_rows: u64,
    /// Rejects per target column (a row failing in two columns counts in both).
    pub by_column: BTreeMap<String, u64>,
    /// Rejects per reason code (`syntax`, `null`, …).
    pub by_reason: BTreeMap<String, u64>,
    /// Rejected rows per reason code of the row's first failing column (the reason its
    /// quarantine record leads with): these add up to `rejected_rows`.
    pub rows_by_reason: BTreeMap<String, u64>,
}

impl RejectStats {
    /// Records one mapped batch of `rows` raw rows and its rejects (ordered by row, as the
    /// mapper returns them).
    pub fn record(&mut self, rows: usize, rejects: &[Reject]) {
        self.rows += rows as u64;
        let mut last_row = None;
        for r in rejects {
            if last_row != Some(r.row) {
                self.rejected_rows += 1;
                last_row = Some(r.row);
                *self
                    .rows_by_reason
                    .entry(r.reason.code().to_owned())
                    .or_default() += 1;
            }
            *self.by_column.entry(r.column.clone()).or_default() += 1;
            *self
                .by_reason
                .entry(r.reason.code().to_owned())
                .or_default() += 1;
        }
    }

    /// Rows that made it into the output.
    pub fn accepted_rows(&self) -> u64 {
        self.rows - self.rejected_rows
    }

    /// Checks the final counts against `policy.max_reject_ratio`; call once the export is
    /// fully mapped.
    pub fn check(&self, policy: &RejectPolicy) -> Result<(), RejectRatioExceeded> {
        self.check_against(policy, self.rows)
    }

    /// Early check while the export is still streaming: with the expected total (Titan's
    /// record count), fail as soon as the rejects alone exceed the limit.
    pub fn check_early(
        &self,
        policy: &RejectPolicy,
        expected_rows: Option<u64>,
    ) -> Result<(), RejectRatioExceeded> {
        match expected_rows {
            Some(total) => self.check_against(policy, total.max(self.rows)),
            None => Ok(()),
        }
    }

    fn check_against(&self, policy: &RejectPolicy, rows: u64) -> Result<(), RejectRatioExceeded> {
        let Some(max_ratio) = policy.max_reject_ratio else {
            return Ok(());
        };
        if policy.on_bad_row == BadRowPolicy::Fail || self.rejected_rows == 0 {
            return Ok(());
        }
        let ratio = self.rejected_rows as f64 / rows.max(1) as f64;
        if ratio > max_ratio {
            Err(RejectRatioExceeded {
                rejected: self.rejected_rows,
                rows,
                ratio,
                max_ratio,
            })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::RejectReason;

    fn reject(row: u64, column: &str, reason: RejectReason) -> Reject {
        Reject {
            row,
            column: column.into(),
            value: None,
            reason,
            expected: String::new(),
        }
    }

    #[test]
    fn policies_deserialize_in_snake_case_with_quarantine_default() {
        let p: RejectPolicy =
            serde_json::from_str(r#"{"on_bad_row": "skip", "max_reject_ratio": 0.1}"#).unwrap();
        assert_eq!(p.on_bad_row, BadRowPolicy::Skip);
        assert_eq!(p.max_reject_ratio, Some(0.1));
        let p: RejectPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(p.on_bad_row, BadRowPolicy::Quarantine);
        assert_eq!(p.max_reject_ratio, None);
        assert!(serde_json::from_str::<RejectPolicy>(r#"{"on_bad_row": "drop"}"#).is_err());
        assert!(serde_json::from_str::<RejectPolicy>(r#"{"max_ratio": 1}"#).is_err());
    }

    #[test]
    fn each_rejected_row_counts_once_under_its_first_reason() {
        let mut stats = RejectStats::default();
        stats.record(
            10,
            &[
                reject(2, "price", RejectReason::Syntax),
                reject(2, "name", RejectReason::Null),
                reject(5, "name", RejectReason::Null),
                reject(5, "price", RejectReason::Syntax),
                reject(7, "price", RejectReason::Syntax),
            ],
        );
        stats.record(4, &[reject(1, "day", RejectReason::InvalidDateTime)]);
        let rows: Vec<(&str, u64)> = stats
            .rows_by_reason
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(rows, [("invalid_date_time", 1), ("null", 1), ("syntax", 2)]);
        assert_eq!(
            stats.rows_by_reason.values().sum::<u64>(),
            stats.rejected_rows
        );
        // Per column value, a row failing twice counts under both reasons.
        assert_eq!((stats.by_reason["syntax"], stats.by_reason["null"]), (3, 2));
    }

    #[test]
    fn rows_are_counted_once_and_the_ratio_enforced() {
        let mut stats = RejectStats::default();
        stats.record(
            10,
            &[
                reject(2, "price", RejectReason::Syntax),
                reject(2, "name", RejectReason::Null),
                reject(7, "price", RejectReason::Syntax),
            ],
        );
        stats.record(10, &[]);
        assert_eq!(
            (stats.rows, stats.rejected_rows, stats.accepted_rows()),
            (20, 2, 18)
        );
        assert_eq!(stats.by_column["price"], 2);
        assert_eq!(stats.by_reason["syntax"], 2);
        assert_eq!(stats.by_reason["null"], 1);

        let limit = |r| RejectPolicy {
            on_bad_row: BadRowPolicy::Quarantine,
            max_reject_ratio: Some(r),
        };
        assert!(stats.check(&limit(0.1)).is_ok());
        let err = stats.check(&limit(0.05)).unwrap_err();
        assert_eq!((err.rejected, err.rows), (2, 20));
        assert_eq!(
            err.to_string(),
            "2 of 20 rows rejected (10.00%), more than the allowed 5.00%"
        );
        assert!(stats.check(&RejectPolicy::default()).is_ok());
        // Early: 2 rejects of an expected 1000 rows is fine at 1%, not at 0.1%.
        assert!(stats.check_early(&limit(0.01), Some(1000)).is_ok());
        assert!(stats.check_early(&limit(0.001), Some(1000)).is_err());
        assert!(stats.check_early(&limit(0.0), None).is_ok());
    }
}
