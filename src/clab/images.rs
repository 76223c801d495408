//! The image map: what a container image means when nodes run the host's programs.
//! A profile names the images it covers and gives nslab node keys (processes, private
//! directories, sysctls; they become an nslab kind), programs the image has under
//! another name on the host, whether its userland is busybox's, and a warning for what
//! the image would run that nslab does not. The built-in map covers common images; a
//! user's map is read the same way and consulted first.

use crate::diag::Sink;
use crate::spec::raw::Sp;
use crate::spec::read;
use crate::spec::yaml::{self, Yaml};

const PROFILE_KEYS: &[&str] = &["images", "node", "programs", "busybox", "frr", "warning"];

/// Where a busybox node finds the host's busybox: `/bin/busybox` on Debian, Ubuntu
/// (usr-merged, so `/usr/bin/busybox` too) and Alpine alike.
pub const BUSYBOX: &str = "/bin/busybox";
/// The node's directory of busybox applets, on its own `/run` tmpfs (nothing is made on
/// the host), last on its PATH: a program the host has wins, busybox fills the gaps.
pub const BUSYBOX_DIR: &str = "/run/busybox";
/// The applets a busybox node gets: what lab scripts for Alpine images call and a Debian
/// or Ubuntu host usually lacks. Each is one bind of the host's busybox in the node.
pub const BUSYBOX_APPLETS: &[&str] = &[
    "ash",
    "arping",
    "brctl",
    "httpd",
    "ipcalc",
    "nc",
    "nslookup",
    "telnet",
    "tftp",
    "traceroute",
    "traceroute6",
    "udhcpc",
    "vconfig",
];

/// The built-in map. FRR images run the host's FRR daemons the node's bound daemons file
/// enables, with the configuration the file binds into /etc/frr; general-purpose images run no process (their `cmd:` or `exec:` does the
/// work, with the host's programs); Alpine images get busybox's applets; web server
/// images start no server (the host's nginx or httpd would run with the host's
/// configuration and logs), which a warning says.
pub const BUILTIN: &str = r#"# nslab's built-in image map
frr:
  images: [frrouting/frr, "frrouting/frr-*", quay.io/frrouting/frr, "quay.io/frrouting/frr-*"]
  node:
    sysctls: { net.ipv4.ip_forward: 1, net.ipv6.conf.all.forwarding: 1 }
    private:
      - { path: /etc/frr, owner: "frr:frr", mode: "0755" }
      - { path: /var/run/frr, owner: "frr:frr", mode: "0755" }
      - { path: /var/lib/frr, owner: "frr:frr", mode: "0755" }
      - { path: /var/log/frr, owner: "frr:frr", mode: "0755" }
      - { path: /var/tmp/frr, owner: "frr:frr", mode: "0700" }
  # One process per daemon the node's /etc/frr/daemons enables, each ready on its vty
  # socket, then `vtysh -b` for an integrated frr.conf (see src/clab/frr.rs)
  frr: true
web-alpine:
  images: ["nginx:*alpine*", "httpd:*alpine*"]
  busybox: true
  warning: the image's web server is not started
web:
  images: [nginx, httpd]
  warning: the image's web server is not started
alpine:
  images: [alpine, "alpine/*", busybox, "*:*alpine*"]
  busybox: true
host:
  images: [debian, ubuntu, fedora, centos, rockylinux,
           wbitt/network-multitool, ghcr.io/srl-labs/network-multitool,
           ghcr.io/hellt/network-multitool, praqma/network-multitool, nicolaka/netshoot]
  programs: { ash: sh }
"#;

/// One profile of the map.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub patterns: Vec<String>,
    /// nslab node keys, or `None` for images that run nothing of their own.
    pub node: Option<Yaml>,
    /// Programs the image has that the host has under another name (`ash` -> `sh`).
    pub programs: Vec<(String, String)>,
    /// The image's userland is busybox: the node gets [`BUSYBOX_APPLETS`].
    pub busybox: bool,
    /// The image is FRR's: the node runs the daemons its daemons file enables (see
    /// `clab::frr`).
    pub frr: bool,
    /// Said at the `image:` of a node without `cmd`/`entrypoint`: what the image would
    /// run that the node does not.
    pub warning: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    pub profiles: Vec<Profile>,
}

impl ImageMap {
    /// The built-in map.
    pub fn builtin() -> ImageMap {
        let mut sink = Sink::default();
        let map = parse(&mut sink, BUILTIN);
        debug_assert!(!sink.has_errors(), "the built-in image map is invalid");
        map
    }

    /// A user's map in front of the built-in one.
    pub fn with_builtin(mut self) -> ImageMap {
        self.profiles.extend(ImageMap::builtin().profiles);
        self
    }

    /// The first profile that covers `image`.
    /// A pattern with a tag (`nginx:*alpine*`) matches the image with its tag
    /// (`latest` when it has none); one without matches the name alone.
    pub fn find(&self, image: &str) -> Option<&Profile> {
        let (name, tag) = (normalize(image), tag(image));
        self.profiles.iter().find(|p| {
            p.patterns.iter().any(|pat| match pat.rsplit_once(':') {
                Some((n, t)) if has_tag(pat) => {
                    crate::words::glob(n, &name) && crate::words::glob(t, tag)
                }
                _ => crate::words::glob(pat, &name),
            })
        })
    }
}

/// Whether a pattern names a tag: a `:` after its last `/` (`localhost:5000/x` names none).
fn has_tag(pattern: &str) -> bool {
    let last = pattern.rfind('/').map_or(0, |i| i + 1);
    pattern[last..].contains(':')
}

/// An image reference's tag, `latest` when it has none.
fn tag(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    let last = image.rfind('/').map_or(0, |i| i + 1);
    image[last..].split_once(':').map_or("latest", |(_, t)| t)
}

/// An image reference without tag or digest, the way Docker Hub short names read:
/// `docker.io/library/alpine:3` is `alpine`.
pub fn normalize(image: &str) -> String {
    let image = image.split('@').next().unwrap_or(image);
    let last = image.rfind('/').map_or(0, |i| i + 1);
    let image = match image[last..].find(':') {
        Some(i) => &image[..last + i],
        None => image,
    };
    let image = image.strip_prefix("docker.io/").unwrap_or(image);
    image.strip_prefix("library/").unwrap_or(image).to_string()
}

/// Reads an image map; problems are located in its text.
pub fn parse(sink: &mut Sink, text: &str) -> ImageMap {
    let root = match yaml::parse(text, yaml::Limits::default()) {
        Ok(root) => root,
        Err(diags) => {
            sink.diagnostics.extend(diags);
            return ImageMap::default();
        }
    };
    let mut map = ImageMap::default();
    for (k, v) in read::entries(sink, &root, "the image map") {
        let name = read::key(k);
        if let Some(p) = profile(sink, &name, v) {
            map.profiles.push(p);
        }
    }
    map
}

fn profile(sink: &mut Sink, name: &Sp<String>, y: &Yaml) -> Option<Profile> {
    let what = format!("image profile `{}`", name.value);
    let f = read::fields(sink, y, &what, PROFILE_KEYS)?;
    let patterns: Vec<String> = match f.value("images") {
        Some(v) => read::strings(sink, v, "an image")
            .into_iter()
            .map(|s| match s.value.rsplit_once(':') {
                Some((n, t)) if has_tag(&s.value) => format!("{}:{t}", normalize(n)),
                _ => normalize(&s.value),
            })
            .collect(),
        None => {
            sink.error(Some(f.span), format!("{what} needs `images:`"))
                .hint("list the images it covers, like `images: [quay.io/frrouting/frr]`");
            return None;
        }
    };
    let node = f.value("node").cloned();
    if let Some(n) = &node {
        // Checked as an nslab kind, so a mistake is reported in the map, where it is.
        crate::spec::node::node_spec(sink, n, &what, false);
        if crate::model::names::check_node_name(&name.value).is_err() {
            sink.error(Some(name.span), format!("{what} cannot name an nslab kind"))
                .hint("use letters, digits, `_`, `-` and `.`");
        }
    }
    let programs = f
        .value("programs")
        .map(|v| read::string_map(sink, v, "`programs`"))
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.value, v.value))
        .collect();
    let busybox = f
        .value("busybox")
        .and_then(|v| read::boolean(sink, v, "`busybox`"))
        .unwrap_or(false);
    let frr = f
        .value("frr")
        .and_then(|v| read::boolean(sink, v, "`frr`"))
        .unwrap_or(false);
    let warning = f
        .value("warning")
        .and_then(|v| read::string(sink, v, "`warning`"))
        .map(|w| w.value);
    Some(Profile {
        name: name.value.clone(),
        patterns,
        node,
        programs,
        busybox,
        frr,
        warning,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_map_reads_cleanly() {
        let mut sink = Sink::default();
        let map = parse(&mut sink, BUILTIN);
        assert!(sink.diagnostics.is_empty(), "{:?}", sink.diagnostics);
        assert_eq!(map.profiles.len(), 5);
    }

    #[test]
    fn images_match_without_tags_and_registry_defaults() {
        let map = ImageMap::builtin();
        let name = |i| map.find(i).map(|p| p.name.as_str());
        assert_eq!(name("quay.io/frrouting/frr:10.5.1"), Some("frr"));
        assert_eq!(name("frrouting/frr-debian:latest"), Some("frr"));
        assert_eq!(name("docker.io/library/alpine:3"), Some("alpine"));
        assert_eq!(name("nginx:stable-alpine"), Some("web-alpine"));
        assert_eq!(name("nginx"), Some("web"));
        assert_eq!(name("python:3.12-alpine3.20"), Some("alpine"));
        assert_eq!(name("debian:bookworm"), Some("host"));
        assert_eq!(name("localhost:5000/alpine"), None);
        assert_eq!(name("wbitt/network-multitool:3.22.2"), Some("host"));
        assert_eq!(name("ghcr.io/nokia/srlinux"), None);
        assert_eq!(
            normalize("localhost:5000/x/y:1@sha256:ab"),
            "localhost:5000/x/y"
        );
    }

    #[test]
    fn a_bad_profile_is_located_in_the_map() {
        let mut sink = Sink::default();
        parse(&mut sink, "bird:\n  imgs: [bird]\n");
        assert!(
            sink.diagnostics
                .iter()
                .any(|d| d.message.contains("unknown key `imgs`") && d.span.unwrap().line == 2)
        );
    }
}
