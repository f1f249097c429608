//! Committing small executions that waited in a combiner: together in one file when at
//! least two are still ours, else each alone; then their leftovers cleaned up and their
//! leases released, never before their commit is settled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Ctx, lock};
use crate::report::{ExecutionReport, Outcome};
use crate::sink::lease::Lease;
use crate::sink::{Committed, GroupCommitted, GroupFailed, Staged};

/// A small execution, written and still leased, waiting in a combiner for its group.
pub(super) struct Waiting {
    pub staged: Staged,
    pub report: ExecutionReport,
    pub lease: Option<Lease>,
}

/// Commits a group of waiting executions: as one combined file when there are at least
/// two whose leases are still ours, else (and for whatever cannot join) each alone. Then
/// cleans up what they left and releases their leases.
pub(super) async fn flush(ctx: &Ctx, group: Vec<Waiting>) -> Vec<ExecutionReport> {
    let mut done = Vec::with_capacity(group.len());
    let mut alone = Vec::new();
    let mut held = Vec::new();
    // Members whose group commit could not be settled: their leases must not be let go
    // (a process taking one over settles the group first; see `claim`).
    let mut unsettled = Vec::new();
    for w in group {
        // A lease lost to a stall may have let another process commit the execution alone.
        let ours = match &w.lease {
            Some(l) => l.still_held().await.unwrap_or(false),
            None => true,
        };
        if ours { held.push(w) } else { alone.push(w) }
    }
    if held.len() >= 2 {
        let members: Vec<&Staged> = held.iter().map(|w| &w.staged).collect();
        match ctx
            .sink
            .commit_group(&members, ctx.writer_settings(members[0]))
            .await
        {
            Ok(GroupCommitted::Now { file, bytes }) => {
                committed_together(&mut held, &file, bytes);
                done.append(&mut held);
            }
            Ok(GroupCommitted::Abandoned { committed }) => {
                info!(
                    ?committed,
                    "Members committed by another run meanwhile; group not combined"
                );
                for mut w in held.drain(..) {
                    if committed.contains(&w.report.execution_id) {
                        w.report.outcome = Outcome::AlreadyIngested;
                        done.push(w);
                    } else {
                        alone.push(w);
                    }
                }
            }
            Err(GroupFailed::Before(e)) => {
                warn!(error = %e, members = held.len(), "Could not combine; committing each alone");
                alone.append(&mut held);
            }
            Err(GroupFailed::During(e)) => {
                warn!(error = %e, members = held.len(), "Group commit failed");
                let settled = settle(ctx, &held).await;
                for mut w in held.drain(..) {
                    w.report.outcome = Outcome::Failed;
                    w.report.error = Some(format!("group commit: {e}"));
                    if settled {
                        done.push(w);
                    } else {
                        unsettled.push(w);
                    }
                }
            }
        }
    } else {
        alone.append(&mut held);
    }
    for mut w in alone {
        commit_alone(ctx, &mut w).await;
        done.push(w);
    }
    let mut reports = Vec::with_capacity(done.len() + unsettled.len());
    for w in done {
        let id = w.report.execution_id.as_str();
        ctx.finish_execution(&w.staged.key.dataset, id, w.lease)
            .await;
        ctx.progress.finish(id, w.report.outcome);
        reports.push(w.report);
    }
    for w in unsettled {
        // Dropped, not released: the lease expires, and whoever takes it over settles the
        // group's intent before touching the execution.
        drop(w.lease);
        ctx.progress
            .finish(&w.report.execution_id, w.report.outcome);
        reports.push(w.report);
    }
    reports
}

/// Commits the groups whose oldest member has waited `max_commit_delay`, until `stop`;
/// returns the reports of the executions it committed. Runs beside the run loop, so a
/// run killed late loses at most that window of finished work.
pub(super) async fn flush_aged(ctx: Arc<Ctx>, stop: CancellationToken) -> Vec<ExecutionReport> {
    let idle = ctx.cfg.combine.max_delay.min(Duration::from_secs(1));
    let mut reports = Vec::new();
    loop {
        let wait = lock(&ctx.combiners)
            .next_due(Instant::now())
            .unwrap_or(idle)
            .max(Duration::from_millis(20));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => break,
        }
        let aged = lock(&ctx.combiners).take_aged(Instant::now());
        for group in aged {
            reports.extend(flush(&ctx, group).await);
        }
    }
    reports
}

/// Finishes or undoes a group commit that failed half way, before any member's lease is
/// let go: otherwise another process could commit a member alone while its rows are
/// already published in the combined file. `false` if it could not be settled now.
async fn settle(ctx: &Ctx, members: &[Waiting]) -> bool {
    let mut settled = true;
    for w in members {
        let k = &w.staged.key;
        if let Err(e) = ctx
            .sink
            .settle(&k.dataset, &k.task_id, &w.report.execution_id)
            .await
        {
            warn!(execution_id = w.report.execution_id, error = %e, "Could not settle the failed group commit; its leases are left to expire");
            settled = false;
        }
    }
    settled
}

/// Fills in the reports of a group committed as one file: each member's rows, and its
/// share of the file's bytes by rows, so the run's byte total is the file's size.
fn committed_together(members: &mut [Waiting], file: &object_store::path::Path, bytes: u64) {
    let total_rows: u64 = members.iter().map(|w| w.staged.manifest.rows).sum();
    let mut bytes_left = bytes;
    let n = members.len();
    for (i, w) in members.iter_mut().enumerate() {
        let rows = w.staged.manifest.rows;
        let share = if i + 1 == n {
            bytes_left
        } else {
            (u128::from(bytes) * u128::from(rows) / u128::from(total_rows.max(1))) as u64
        };
        bytes_left -= share.min(bytes_left);
        let r = &mut w.report;
        r.outcome = Outcome::Ingested;
        r.rows = rows;
        r.files = vec![file.to_string()];
        r.bytes = share;
    }
    info!(
        file = %file,
        executions = n,
        rows = total_rows,
        bytes,
        "Committed a combined file"
    );
}

/// Commits a waiting execution by itself, as if it had never waited.
async fn commit_alone(ctx: &Ctx, w: &mut Waiting) {
    match ctx.sink.commit(&w.staged).await {
        Ok(Committed::Now) => committed_alone(&mut w.report, &w.staged),
        Ok(Committed::ByAnother) => {
            info!(
                execution_id = w.report.execution_id,
                "Committed by another run meanwhile; ours discarded"
            );
            w.report.outcome = Outcome::AlreadyIngested;
        }
        Err(e) => {
            warn!(execution_id = w.report.execution_id, error = %e, "Execution not ingested");
            w.report.outcome = Outcome::Failed;
            w.report.error = Some(e.to_string());
        }
    }
}

/// Fills in the report of an execution committed by itself.
pub(super) fn committed_alone(report: &mut ExecutionReport, staged: &Staged) {
    let manifest = &staged.manifest;
    report.outcome = Outcome::Ingested;
    report.rows = manifest.rows;
    report.files = staged
        .parts
        .iter()
        .map(|p| p.final_path.to_string())
        .collect();
    report.bytes = staged.bytes();
    info!(
        execution_id = manifest.execution_id,
        rows = manifest.rows,
        files = staged.parts.len(),
        status = manifest.execution_status,
        "Ingested execution"
    );
}
