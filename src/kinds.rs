//! Small values of the topology that every layer below the parser uses: the plan, the
//! journal, a node's init, the harness and the command line. They carry no source span, so
//! the layers below the model never import the parser (`spec` reads YAML into them and
//! `model` hands them on, as `model::kinds`); their serde names are the plan's and the
//! journal's vocabulary. They sit under both spec and model and import nothing of the
//! crate, so neither layer imports the other through them.

/// Namespaces a node can have of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NsKind {
    Net,
    Uts,
    Mnt,
    Pid,
    Ipc,
}

impl NsKind {
    pub const ALL: [NsKind; 5] = [
        NsKind::Net,
        NsKind::Uts,
        NsKind::Mnt,
        NsKind::Pid,
        NsKind::Ipc,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NsKind::Net => "net",
            NsKind::Uts => "uts",
            NsKind::Mnt => "mnt",
            NsKind::Pid => "pid",
            NsKind::Ipc => "ipc",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteKind {
    Unicast,
    Blackhole,
    Unreachable,
    Prohibit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Never,
    OnFailure,
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
    Both,
}

/// The exit status a `cmd` check wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    /// `exit: N` (0 when neither `exit` nor `expect` is given).
    Code(i32),
    /// `expect: fail`: any non-zero status.
    Failure,
}

/// A routing table: by name (`main`, `local`, `default`) or number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RouteTable(pub u32);

impl RouteTable {
    pub const MAIN: RouteTable = RouteTable(254);

    pub fn parse(s: &str) -> Result<RouteTable, String> {
        match s {
            "main" => Ok(RouteTable(254)),
            "local" => Ok(RouteTable(255)),
            "default" => Ok(RouteTable(253)),
            _ => match s.parse::<u32>() {
                Ok(n) if n > 0 => Ok(RouteTable(n)),
                _ => Err(format!(
                    "`{s}` is not `main`, `local`, `default` or a table number (1-4294967295)"
                )),
            },
        }
    }

    pub fn name(self) -> String {
        match self.0 {
            254 => "main".into(),
            255 => "local".into(),
            253 => "default".into(),
            n => n.to_string(),
        }
    }
}

/// What `node_stop`, `node_start` and `node_restart` do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeAction {
    Stop,
    Start,
    Restart,
}

/// How a `reach` check builds its echo requests, as `ping -s`, `-M` and `-t` would.
/// Unset fields keep what reach always did: a 16-byte payload, the kernel's
/// fragmentation default, TTL (hop limit) 255 so long chains are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Echo {
    /// Payload bytes after the 8-byte ICMP header (the packet is 28 more over IPv4, 48
    /// more over IPv6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u16>,
    /// `true`: never fragmented (IPv4 DF set); `false`: fragmented wherever needed (IPv4
    /// DF clear, IPv6 by the sender).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub df: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
}

impl Echo {
    /// The payload reach has always sent: small enough for any link.
    pub const DEFAULT_SIZE: u16 = 16;
    /// The largest payload of one IPv4 echo: 65,535 less the 20-byte IP header and the
    /// 8-byte ICMP header.
    pub const MAX_SIZE_V4: u16 = 65_507;
    /// IPv6's payload length counts no IP header: 65,535 less the 8-byte ICMPv6 header.
    pub const MAX_SIZE_V6: u16 = 65_527;

    pub fn is_default(&self) -> bool {
        *self == Echo::default()
    }

    /// The IP packet's size for a payload: the IP and ICMP headers added.
    pub fn packet_size(payload: u16, v6: bool) -> u32 {
        u32::from(payload) + if v6 { 48 } else { 28 }
    }
}

/// What bounds single readiness probes, beside the whole wait's `timeout`: how long one
/// may run, how many may fail, and how long after a start failures do not count
/// (containerlab's healthcheck `timeout`, `retries` and `start-period` map here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ProbeLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period_ms: u64,
}

impl ProbeLimits {
    pub fn is_none(&self) -> bool {
        *self == ProbeLimits::default()
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// How a macvlan on a host interface shares it (the kernel's modes of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacvlanMode {
    Bridge,
    Private,
    Vepa,
    Passthru,
}

impl MacvlanMode {
    pub const ALL: [MacvlanMode; 4] = [
        MacvlanMode::Bridge,
        MacvlanMode::Private,
        MacvlanMode::Vepa,
        MacvlanMode::Passthru,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Private => "private",
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Passthru => "passthru",
        }
    }
}

/// A kind of interface a node declares under `interfaces:`: node-local, not a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Dummy,
    Vlan,
}
