//! `nslab apply`'s entry: a lab that is not up is brought up; a running one is opened as a
//! [`Session`] under its lock, which changes it (see `apply::reconcile`).

use super::{RuntimeError, Session};
use crate::apply::executor::Cancel;
use crate::apply::reconcile::Applied;
use crate::apply::{self, ApplyError, UpOptions};
use crate::model::Topology;
use crate::plan::Plan;

/// [`apply_with`] on its own runtime, rolling back on SIGINT, SIGTERM and SIGHUP when
/// `opts.handle_signals`.
pub fn apply(t: &Topology, plan: &Plan, opts: &UpOptions) -> Result<Applied, ApplyError> {
    let rt = apply::tokio_runtime().map_err(|e| ApplyError::Host {
        lab: t.lab.clone(),
        source: e,
    })?;
    rt.block_on(async {
        let cancel = if opts.handle_signals {
            apply::signals().0
        } else {
            apply::never()
        };
        apply_with(t, plan, opts, cancel).await
    })
}

/// Makes the lab what `plan` says: brings it up if it is not up, else changes what
/// differs. A failure or `cancel` rolls back this change only.
pub async fn apply_with(
    t: &Topology,
    plan: &Plan,
    opts: &UpOptions,
    cancel: Cancel,
) -> Result<Applied, ApplyError> {
    let lab = &t.lab;
    // Fingerprinted once here, so an edited config file is a change (see `plan::diff`).
    let fingerprinted = apply::sources::fingerprint(plan);
    let plan: &Plan = &fingerprinted;
    if !opts.host.lab_dir(lab).exists() {
        match apply::up_with(t, plan, opts, cancel.clone()).await {
            // Someone else brought it up meanwhile: change it instead.
            Err(
                ApplyError::AlreadyUp { .. }
                | ApplyError::InUse { .. }
                | ApplyError::LeftBehind { .. },
            ) => {}
            other => return other.map(Applied::Up),
        }
    }
    // A running lab is changed: its machine checked as `up` checks it.
    if let Some(name) = &opts.host.host {
        apply::underlay::check(t, name).await?;
    }
    // The lock first: a lab still coming up is waited for, not refused.
    let lock = tokio::task::block_in_place(|| apply::lock_or_cancel(&opts.host, lab, &cancel))?;
    let session = Session::under_lock(&opts.host, lab, lock).map_err(|e| not_up(lab, e))?;
    // As in `up`: the VNIs checked again under the host's VNI lock and claimed on file
    // before it goes, so a lab racing this change for a VNI gets the clash message. The
    // claim stays until the change is over: then the stored plan holds the lab's VNIs
    // (the next plan too, if a rollback was cut short).
    let dir = opts.host.lab_dir(lab);
    if let Some(vnis) =
        tokio::task::block_in_place(|| crate::state::vnis::lock_free(&opts.host, t))?
    {
        vnis.claim(&dir)?;
    }
    let applied = session.apply(t, plan, opts, cancel).await;
    crate::state::vnis::release(&dir);
    record(&dir, lab, &applied);
    applied
}

/// The change in the lab's event log, as `link` and `node` commands are: a line for the
/// lab with the counts, one per node changed, or the failure that was rolled back. A log
/// that cannot be written is said on stderr; the change itself stands.
fn record(dir: &crate::state::LabDir, lab: &str, applied: &Result<Applied, ApplyError>) {
    let mut lines: Vec<(&str, String, String)> = Vec::new();
    match applied {
        Ok(Applied::Changed {
            diff, recovered, ..
        }) => {
            let mut summary = match diff.groups.is_empty() {
                true => "nothing changed".to_string(),
                false => crate::plan::diff::summary(diff),
            };
            if *recovered {
                summary.push_str("; an interrupted apply was taken back first");
            }
            lines.push(("apply", lab.to_string(), summary));
            for g in &diff.groups {
                let what = crate::plan::diff::group_summary(g);
                lines.push(("apply", g.node.clone(), what));
            }
        }
        Ok(Applied::Up(_)) => {}
        Err(e) => lines.push(("apply-failed", lab.to_string(), e.to_string())),
    }
    for (action, target, detail) in lines {
        if let Err(e) = super::events::record(dir, action, &target, &detail) {
            crate::errln!("nslab: lab `{lab}`: cannot record the apply in the event log: {e}");
            return;
        }
    }
}

/// Why the lab cannot be changed, in `apply`'s words.
fn not_up(lab: &str, e: RuntimeError) -> ApplyError {
    match e {
        RuntimeError::NotUp(lab) => ApplyError::NotUp(lab),
        RuntimeError::Leftovers { lab } | RuntimeError::ComingUp { lab, .. } => {
            ApplyError::Leftovers { lab }
        }
        RuntimeError::State(s) => ApplyError::State(s),
        other => ApplyError::Host {
            lab: lab.to_string(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}
