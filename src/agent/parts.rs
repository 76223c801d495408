//! Whether the ConfigMaps a split lab's files came in are of one generation. The kubelet
//! updates each ConfigMap of a projected volume from its own view of it, and `kubectl
//! apply` updates them one by one, so an agent looking in between may see parts of two
//! versions: a topology that mounts a file the volume has only in its old form, or not
//! yet. `nslab k8s` gives every part a file `.nslab-parts/<i>` holding the generation (a
//! hash of the whole) and the number of parts ([`marker`]); the agent applies only when
//! every part is there with the same generation, and waits otherwise.

use std::path::Path;

/// The directory of the parts' files, beside the topology.
pub const DIR: &str = ".nslab-parts";

/// What each part's file holds: the generation and how many parts there are.
pub fn marker(generation: u64, parts: usize) -> String {
    format!("{generation:016x} {parts}\n")
}

/// `Ok` when the files in `dir` (the topology's directory) are of one generation: no
/// [`DIR`] (one ConfigMap, which the kubelet updates at once), or every part's file
/// there and all alike. Otherwise what disagrees, for the log.
pub fn agree(dir: &Path) -> Result<(), String> {
    let parts = dir.join(DIR);
    let first = match std::fs::read_to_string(parts.join("1")) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !parts.exists() => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", parts.join("1").display())),
    };
    let n: usize = first
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=crate::k8s::MAX_CONFIGMAPS).contains(n))
        .ok_or_else(|| {
            format!(
                "{}: not a part's marker: {first:?}",
                parts.join("1").display()
            )
        })?;
    let mut differ = Vec::new();
    for i in 2..=n {
        match std::fs::read_to_string(parts.join(i.to_string())) {
            Ok(text) if text == first => {}
            Ok(text) => differ.push(format!("part {i} is of generation {}", gen_of(&text))),
            Err(e) => differ.push(format!("part {i} is not there ({e})")),
        }
    }
    if differ.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the lab's {n} ConfigMaps are not of one generation yet (part 1 is of generation {}, {}); waiting for the rest of the update",
        gen_of(&first),
        differ.join(", ")
    ))
}

fn gen_of(marker: &str) -> &str {
    marker.split_whitespace().next().unwrap_or("(none)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str, parts: &[(&str, &str)]) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("nslab-parts-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join(DIR)).unwrap();
        for (file, text) in parts {
            std::fs::write(d.join(DIR).join(file), text).unwrap();
        }
        d
    }

    #[test]
    fn parts_of_one_generation_agree_and_a_single_configmap_needs_none() {
        let (a, b) = (marker(0xabc, 3), marker(0xdef, 3));
        assert_eq!(a, "0000000000000abc 3\n");
        let d = dir("same", &[("1", &a), ("2", &a), ("3", &a)]);
        assert_eq!(agree(&d), Ok(()));
        std::fs::remove_dir_all(d.join(DIR)).unwrap();
        assert_eq!(agree(&d), Ok(()), "one ConfigMap: no parts' files");
        std::fs::remove_dir_all(&d).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn mixed_or_missing_parts_wait_naming_each_part_that_differs() {
        let (old, new) = (marker(0x1111, 3), marker(0x2222, 3));
        let d = dir("mixed", &[("1", &new), ("2", &old), ("3", &new)]);
        let why = agree(&d).unwrap_err();
        assert!(
            why.contains("part 1 is of generation 0000000000002222")
                && why.contains("part 2 is of generation 0000000000001111")
                && !why.contains("part 3")
                && why.contains("waiting"),
            "{why}"
        );
        // A part the volume does not have yet (a new ConfigMap of a grown lab).
        std::fs::remove_file(d.join(DIR).join("3")).unwrap();
        let why = agree(&d).unwrap_err();
        assert!(why.contains("part 3 is not there"), "{why}");
        // The first part gone while the others are there: not one generation either.
        std::fs::remove_file(d.join(DIR).join("1")).unwrap();
        assert!(agree(&d).is_err());
        std::fs::write(d.join(DIR).join("1"), "garbage").unwrap();
        assert!(agree(&d).unwrap_err().contains("not a part's marker"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
