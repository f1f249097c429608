//! Claiming an execution before waiting for it: its lease in the store, so another
//! connector process on the same store neither waits for nor downloads it too.

use tracing::{info, warn};

use super::{Ctx, WorkItem, base_report};
use crate::report::{ExecutionReport, Outcome};
use crate::sink::lease::{self, Claim, Lease};

use super::error::RunError;

/// Whether this process goes ahead with an execution.
pub(super) enum Claimed {
    /// Go ahead, under the lease when the store supports leases.
    Go(Option<Lease>),
    /// Done here: another process holds the lease or has committed it meanwhile.
    Skip(ExecutionReport),
}

/// Takes the execution's lease. Store trouble with leases only costs the optimisation: the
/// execution goes ahead without one, since the commit is safe on its own.
pub(super) async fn claim(ctx: &Ctx, item: &WorkItem) -> Result<Claimed, RunError> {
    let (task, execution) = (&item.task, &item.execution);
    let path = lease::lease_path(&task.dataset, &task.task_id, &execution.id);
    let store = ctx.sink.store();
    let lease = match lease::acquire(store, &path, &ctx.owner, lease::LEASE_TTL).await {
        Ok(Claim::Held(l)) => l,
        Ok(Claim::Busy(holder)) => {
            info!(
                execution_id = execution.id,
                holder = holder.describe(),
                "Leased by another run, leaving it"
            );
            let mut report = base_report(task, execution);
            report.outcome = Outcome::Leased;
            report.leased_by = Some(holder.describe());
            return Ok(Claimed::Skip(report));
        }
        Ok(Claim::Unsupported) => return Ok(Claimed::Go(None)),
        Err(e) => {
            warn!(execution_id = execution.id, error = %e, "No lease; going ahead without one");
            return Ok(Claimed::Go(None));
        }
    };
    // Taken over from a crashed holder, which may have been committing it in a group:
    // settle that commit first (recovery at the start of this run may have found the
    // holder still alive), or the execution could be committed alone next to its
    // published rows.
    if let Some(before) = lease.taken_over() {
        info!(
            execution_id = execution.id,
            holder = before.describe(),
            "Lease taken over"
        );
        if let Err(e) = ctx
            .sink
            .settle(&task.dataset, &task.task_id, &execution.id)
            .await
        {
            warn!(execution_id = execution.id, error = %e, "Could not check for an interrupted group commit");
            lease.release().await;
            let mut report = base_report(task, execution);
            report.outcome = Outcome::Failed;
            report.error = Some(format!("checking for an interrupted group commit: {e}"));
            return Ok(Claimed::Skip(report));
        }
    }
    // Planned before another process committed it and released the lease?
    if ctx
        .sink
        .is_committed(&task.dataset, &task.task_id, &execution.id)
        .await?
    {
        lease.release().await;
        info!(
            execution_id = execution.id,
            "Ingested by another run meanwhile, skipping"
        );
        return Ok(Claimed::Skip(base_report(task, execution)));
    }
    Ok(Claimed::Go(Some(lease)))
}
