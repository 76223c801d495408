//! A change plan as text: its counts, one node's in a word, and the whole change for
//! people (`nslab apply --dry-run` and the `apply` event).

use super::{Action, Class, Diff, Group};

/// The counts of a change: `1 node added, 0 removed; 2 changed in place, 0 restarted, 0
/// replaced` (also the `apply` event's detail).
pub fn summary(d: &Diff) -> String {
    format!(
        "{} added, {} removed; {} changed in place, {} restarted, {} replaced",
        crate::words::count(d.count_whole(Action::Add), "node"),
        d.count_whole(Action::Remove),
        d.count(Class::InPlace),
        d.count(Class::Restart),
        d.count(Class::Replace)
    )
}

/// What happened to one node (or the lab's own objects) in a change, in a word and a
/// count: `added: 5 objects`, `in place: 3 changes`, `replaced: 4 changes (...)`.
pub fn group_summary(g: &Group) -> String {
    let (what, noun) = match (g.whole, g.class) {
        (Some(Action::Add), _) => ("added", "object"),
        (Some(Action::Remove), _) => ("removed", "object"),
        (_, Class::InPlace) => ("in place", "change"),
        (_, Class::Restart) => ("restarted", "change"),
        (_, Class::Replace) => ("replaced", "change"),
    };
    let mut s = format!("{what}: {}", crate::words::count(g.changes.len(), noun));
    if let Some(r) = &g.reason {
        s.push_str(&format!(" ({r})"));
    }
    s
}

/// The change plan for people: one block per node, `+` added, `-` removed, `~` changed in
/// place, `*` made again.
pub fn render(d: &Diff) -> String {
    let mut out = String::new();
    if d.groups.is_empty() {
        out.push_str(&format!("lab `{}`: no changes\n", d.lab));
        return out;
    }
    out.push_str(&format!("lab `{}`: {}\n", d.lab, summary(d)));
    for g in &d.groups {
        let what = match (g.whole, g.class) {
            (Some(Action::Add), _) => "add".to_string(),
            (Some(Action::Remove), _) => "remove".to_string(),
            (_, Class::InPlace) => "in place".to_string(),
            (_, Class::Restart) => "restart node".to_string(),
            (_, Class::Replace) => "replace node".to_string(),
        };
        let why = g
            .reason
            .as_ref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        out.push_str(&format!("  {} ({what}{why})\n", g.node));
        for c in &g.changes {
            let mark = match c.action {
                Action::Add => '+',
                Action::Remove => '-',
                Action::Change => '~',
                Action::Recreate => '*',
            };
            out.push_str(&format!("    {mark} {}\n", c.object));
        }
    }
    out
}
