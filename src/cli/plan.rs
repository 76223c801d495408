//! `nslab plan FILE [--json] [--teardown]`

use std::io::{BufWriter, Write};
use std::path::Path;

use super::{CliError, compile, exit};
use crate::plan;

pub fn run(
    host: &crate::state::HostContext,
    file: &Path,
    json: bool,
    teardown: bool,
) -> Result<u8, CliError> {
    let c = compile(file)?;
    let p = super::plan_for(host, &c.topology)?;
    let (p, note) = shared_addresses(host, &c.topology, p, file);
    let placement = super::placement::summary(&c.topology, host.host.as_deref());
    match write(&p, &placement, note.as_deref(), json, teardown) {
        // `nslab plan | head`: the reader went away; what it did not read is dropped.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(exit::OK),
        r => r.map(|()| exit::OK).map_err(Into::into),
    }
}

/// The plan (a multi-host lab's placement first, in text) and its note, to stdout.
fn write(
    p: &plan::Plan,
    placement: &[String],
    note: Option<&str>,
    json: bool,
    teardown: bool,
) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if !json && !teardown {
        for line in placement {
            writeln!(out, "{line}")?;
        }
    }
    match (json, teardown) {
        (true, false) => {
            p.write_json(&mut out)?;
            writeln!(out)?;
        }
        (true, true) => {
            serde_json::to_writer_pretty(&mut out, &p.teardown()).map_err(std::io::Error::other)?;
            writeln!(out)?;
        }
        (false, false) => plan::write_text(p, &mut out)?,
        (false, true) => out.write_all(plan::teardown_text(p).as_bytes())?,
    }
    match (note, json) {
        (Some(n), false) => writeln!(out, "{n}")?,
        (Some(n), true) => crate::errln!("nslab: {n}"),
        (None, _) => {}
    }
    out.flush()
}

/// On a shared management network, the plan with the addresses the lab would get (the
/// network's registry read, never written, and no lock held: it is replaced whole, by a
/// rename), and a note saying whether they are the network's now or provisional.
fn shared_addresses(
    host: &crate::state::HostContext,
    t: &crate::model::Topology,
    p: plan::Plan,
    file: &Path,
) -> (plan::Plan, Option<String>) {
    let Some(network) = t.mgmt.as_ref().and_then(|m| m.network.clone()) else {
        return (p, None);
    };
    let running = host.lab_dir(&p.lab).exists();
    let what = if running { "`apply`" } else { "`up`" };
    let file = file.display().to_string();
    match crate::apply::mgmtnet::place(host, t, &p, &file, running) {
        Ok(None) => (p, None),
        Ok(Some(placed)) if placed.live => {
            let labs = match placed.others.as_slice() {
                [] => "no other lab".to_string(),
                others => format!("labs {}", others.join(", ")),
            };
            let note = format!(
                "note: shared management network `{network}` is up ({labs} on it): the management addresses shown are those its registry gives the lab now; {what} takes them under the host lock, so a lab joining first may change them"
            );
            (placed.plan, Some(note))
        }
        Ok(Some(placed)) => {
            let note = format!(
                "note: shared management network `{network}` is not up: the management addresses shown are provisional (the lab alone on it); {what} takes them from the network's registry, after any lab that joins first"
            );
            (placed.plan, Some(note))
        }
        Err(e) => {
            let note = format!(
                "note: the management addresses shown are provisional, the file's alone: {e}"
            );
            (p, Some(note))
        }
    }
}
