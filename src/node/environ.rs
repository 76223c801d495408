//! The environment a node's commands start with. Nothing of the caller's environment
//! reaches a node (its secrets, its `LD_PRELOAD`, its locale): processes, probes and
//! `nslab exec` start from this base, and the node's and process's `env:` go on top, as
//! `docker exec` does. Which names and values are possible at all is
//! [`crate::spec::node::bad_env_key`]'s to say, at compile time.

/// PATH inside a node, unless its `env:` sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// PATH, HOME and USER of the user commands run as (root, in every node), plus TERM when
/// one is given (an interactive `exec` keeps the caller's terminal type).
pub fn base(term: Option<String>) -> Vec<(String, String)> {
    let uid = nix::unistd::geteuid().as_raw();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let (name, home) = match user_of(&passwd, uid) {
        Some(found) => found,
        None if uid == 0 => ("root".to_string(), "/root".to_string()),
        None => (uid.to_string(), "/".to_string()),
    };
    let mut env = vec![
        ("PATH".to_string(), DEFAULT_PATH.to_string()),
        ("HOME".to_string(), home),
        ("USER".to_string(), name.clone()),
        ("LOGNAME".to_string(), name),
    ];
    if let Some(t) = term.filter(|t| !t.is_empty()) {
        env.push(("TERM".to_string(), t));
    }
    env
}

/// The name and home directory of `uid` in a passwd file. Read directly: NSS lookups
/// need shared libraries this static binary does not load.
fn user_of(passwd: &str, uid: u32) -> Option<(String, String)> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 7 && f[2].parse() == Ok(uid)).then(|| (f[0].to_string(), f[5].to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_found_by_uid_in_a_passwd_file() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\nfrr:x:100:101::/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(
            user_of(passwd, 100),
            Some(("frr".into(), "/nonexistent".into()))
        );
        assert_eq!(user_of(passwd, 0), Some(("root".into(), "/root".into())));
        assert_eq!(user_of(passwd, 7), None);
    }

    #[test]
    fn the_base_has_a_path_and_a_home_and_a_term_only_when_given() {
        let env = base(None);
        let get = |e: &[(String, String)], k: &str| {
            e.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        };
        assert_eq!(get(&env, "PATH").as_deref(), Some(DEFAULT_PATH));
        assert!(get(&env, "HOME").is_some_and(|h| h.starts_with('/')));
        assert_eq!(get(&env, "TERM"), None);
        let env = base(Some("xterm".into()));
        assert_eq!(get(&env, "TERM").as_deref(), Some("xterm"));
    }
}
