//! `nslab exec NODE [-e KEY=VALUE]... -- CMD...`

use std::os::unix::process::ExitStatusExt;

use super::{CliError, exit, lab_arg};
use crate::runtime::{Access, Session};

pub fn run(
    host: &crate::state::HostContext,
    lab: Option<&str>,
    node: &str,
    argv: &[String],
    env: &[String],
) -> Result<u8, CliError> {
    let extra = env
        .iter()
        .filter_map(|e| env_arg(e).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    let lab = lab_arg(host, None, lab)?;
    let status = Session::open(host, &lab, Access::Read)?.exec(node, argv, &extra)?;
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
        _ => exit::FAILED,
    })
}

/// The node and the command from the words after nslab's options: the first is the
/// node, and all the others the command's, its options included; a `--` right after the
/// node is dropped (it is optional there, as before).
pub fn split(words: &[String]) -> Result<(&str, &[String]), CliError> {
    let (node, rest) = words
        .split_first()
        .ok_or_else(|| CliError::Usage("give a node and a command".into()))?;
    let command = match rest.split_first() {
        Some((dd, cmd)) if dd == "--" => cmd,
        _ => rest,
    };
    if command.is_empty() {
        return Err(CliError::Usage(format!(
            "give the command to run in node `{node}`, e.g. `nslab exec {node} ip route`"
        )));
    }
    Ok((node, command))
}

/// One `-e` argument: `KEY=VALUE`, or `KEY` alone for the caller's value (nothing when
/// the caller has none).
fn env_arg(arg: &str) -> Result<Option<(String, String)>, CliError> {
    let (key, value) = match arg.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (arg, None),
    };
    if let Some(why) = crate::spec::node::bad_env_key(key) {
        return Err(CliError::Usage(format!(
            "-e {arg}: the variable's name {why}; write KEY=VALUE"
        )));
    }
    Ok(match value {
        Some(v) => Some((key.to_string(), v)),
        None => std::env::var(key).ok().map(|v| (key.to_string(), v)),
    })
}

#[cfg(test)]
mod tests {
    use super::env_arg;

    #[test]
    fn env_arguments_split_at_the_first_equals_and_refuse_an_empty_name() {
        assert_eq!(
            env_arg("A=b=c").unwrap(),
            Some(("A".to_string(), "b=c".to_string()))
        );
        assert_eq!(
            env_arg("EMPTY=").unwrap(),
            Some(("EMPTY".into(), String::new()))
        );
        assert!(env_arg("=x").is_err());
        assert_eq!(env_arg("NSLAB_SURELY_UNSET_VARIABLE").unwrap(), None);
    }
}
