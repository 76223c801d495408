//! Who a process runs as (`user: frr`, `user: 100:101`, `user: frr:frrvty`): the ids
//! and supplementary groups `initgroups` would give, read from a passwd and a group file
//! directly. nslab is a static binary, and a static glibc cannot load NSS modules; lab
//! daemons' users are local system users, as container runtimes assume too.

use std::path::Path;

/// What a process is switched to after fork, before exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    /// The primary group and every group that lists the user as a member, sorted.
    pub groups: Vec<u32>,
    /// The user's name and home when the passwd file knows the user (for USER, HOME).
    pub name: Option<String>,
    pub home: Option<String>,
}

/// Resolves `user` against the contents of a passwd and a group file.
///
/// A name must be in the passwd file. A number needs no entry: its group is the entry's
/// primary group when there is one, else the number itself (as nslab's `owner:` reads
/// it), never root's. An explicit group replaces the primary group; the supplementary
/// groups are those listing the user's name, as `initgroups` gives them.
pub fn resolve(user: &str, passwd: &str, group: &str) -> Result<Ids, String> {
    if let Some(why) = crate::spec::node::bad_user(user) {
        return Err(format!("user `{user}` {why}"));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let entry = match u.parse::<u32>() {
        Ok(uid) => find(passwd, |f| parse(f, 2) == Some(uid)),
        Err(_) => find(passwd, |f| f.first() == Some(&u)),
    };
    let (uid, primary) = match &entry {
        Some(f) => match (parse(f, 2), parse(f, 3)) {
            (Some(uid), Some(gid)) => (uid, gid),
            _ => return Err(format!("the passwd entry of `{u}` is malformed")),
        },
        None => {
            let uid = u.parse::<u32>().map_err(|_| format!("no user `{u}`"))?;
            (uid, uid)
        }
    };
    let gid = match g {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let f = find(group, |f| f.first() == Some(&g)).ok_or(format!("no group `{g}`"))?;
                parse(&f, 2).ok_or(format!("the group entry of `{g}` is malformed"))?
            }
        },
    };
    let name = entry
        .as_ref()
        .and_then(|f| f.first().map(|s| s.to_string()));
    let mut groups = vec![gid];
    if let Some(name) = &name {
        for l in group.lines() {
            let f: Vec<&str> = l.split(':').collect();
            let member = f.get(3).is_some_and(|m| m.split(',').any(|m| m == name));
            if let (true, Some(id)) = (member, parse(&f, 2)) {
                groups.push(id);
            }
        }
    }
    groups.sort_unstable();
    groups.dedup();
    Ok(Ids {
        uid,
        gid,
        groups,
        home: entry.as_ref().and_then(|f| f.get(5).map(|s| s.to_string())),
        name,
    })
}

/// [`resolve`] against a passwd and a group file: the node's own (its init looks in its
/// mount namespace), or for `validate`, the host's or the bind sources that replace them.
pub fn resolve_in(user: &str, passwd: &Path, group: &Path) -> Result<Ids, String> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    resolve(user, &read(passwd)?, &read(group)?)
}

/// What the forked child needs, made before the fork: the switch itself allocates
/// nothing.
pub struct Switch {
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
    groups: Vec<nix::unistd::Gid>,
}

impl Ids {
    pub fn switch(&self) -> Switch {
        use nix::unistd::{Gid, Uid};
        Switch {
            uid: Uid::from_raw(self.uid),
            gid: Gid::from_raw(self.gid),
            groups: self.groups.iter().map(|g| Gid::from_raw(*g)).collect(),
        }
    }
}

impl Switch {
    /// Becomes the user, between fork and exec: the supplementary groups, then the group,
    /// then the user, since after setuid nothing else may be changed. Three system calls,
    /// async-signal-safe.
    pub fn apply(&self) -> std::io::Result<()> {
        nix::unistd::setgroups(&self.groups)?;
        nix::unistd::setgid(self.gid)?;
        nix::unistd::setuid(self.uid)?;
        Ok(())
    }
}

fn find<'a>(text: &'a str, pick: impl Fn(&[&'a str]) -> bool) -> Option<Vec<&'a str>> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<&str>>())
        .find(|f| pick(f))
}

fn parse(fields: &[&str], i: usize) -> Option<u32> {
    fields.get(i).and_then(|f| f.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nfrr:x:102:105:FRR:/nonexistent:/usr/sbin/nologin\nbad:x:zz:1::/:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nfrrvty:x:106:frr\nfrr:x:105:\nnogroup:x:65534:\nadm:x:4:syslog,frr\n";

    #[test]
    fn names_give_their_primary_group_and_every_group_listing_them() {
        let ids = resolve("frr", PASSWD, GROUP).unwrap();
        assert_eq!((ids.uid, ids.gid), (102, 105));
        assert_eq!(ids.groups, [4, 105, 106]);
        assert_eq!(ids.name.as_deref(), Some("frr"));
        assert_eq!(ids.home.as_deref(), Some("/nonexistent"));
        let ids = resolve("frr:frrvty", PASSWD, GROUP).unwrap();
        assert_eq!((ids.uid, ids.gid), (102, 106));
        assert_eq!(ids.groups, [4, 106]);
        let ids = resolve("nobody", PASSWD, GROUP).unwrap();
        assert_eq!((ids.uid, ids.gid, ids.groups), (65534, 65534, vec![65534]));
    }

    #[test]
    fn numbers_need_no_entry_and_never_fall_back_to_root() {
        let ids = resolve("100:101", PASSWD, GROUP).unwrap();
        assert_eq!((ids.uid, ids.gid, ids.groups), (100, 101, vec![101]));
        assert_eq!(ids.name, None);
        let ids = resolve("4242", PASSWD, GROUP).unwrap();
        assert_eq!((ids.uid, ids.gid), (4242, 4242));
        // A number with an entry is that user.
        let ids = resolve("102", PASSWD, GROUP).unwrap();
        assert_eq!(
            (ids.uid, ids.gid, ids.groups),
            (102, 105, vec![4, 105, 106])
        );
        let ids = resolve("frr:7", PASSWD, GROUP).unwrap();
        assert_eq!((ids.gid, ids.groups), (7, vec![4, 7, 106]));
    }

    #[test]
    fn unknown_names_and_bad_forms_are_refused() {
        assert_eq!(resolve("fr", PASSWD, GROUP).unwrap_err(), "no user `fr`");
        assert_eq!(
            resolve("frr:vty", PASSWD, GROUP).unwrap_err(),
            "no group `vty`"
        );
        assert!(
            resolve("bad", PASSWD, GROUP)
                .unwrap_err()
                .contains("malformed")
        );
        assert!(
            resolve("a:b:c", PASSWD, GROUP)
                .unwrap_err()
                .contains("more than one")
        );
        assert!(resolve("", PASSWD, GROUP).is_err());
    }
}
