//! The parser and the matcher on hand-built frames.

use super::*;

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

pub(super) fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = MAC_B.to_vec();
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An L4 header: ports for TCP/UDP, type and code for ICMP.
pub(super) fn l4(proto: u8, sport: u16, dport: u16) -> Vec<u8> {
    let mut h = sport.to_be_bytes().to_vec();
    h.extend_from_slice(&dport.to_be_bytes());
    h.resize(if proto == 6 { 20 } else { 8 }, 0);
    h
}

pub(super) fn v4_frag(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    sport: u16,
    dport: u16,
    off: u16,
) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 0, 0, 0];
    ip.extend_from_slice(&off.to_be_bytes());
    ip.extend_from_slice(&[64, proto, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    ip.extend(l4(proto, sport, dport));
    eth(0x0800, &ip)
}

pub(super) fn v4(src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16) -> Vec<u8> {
    v4_frag(src, dst, proto, sport, dport, 0)
}

/// IPv6 with the given extension headers (next-header numbers) before `proto`.
pub(super) fn v6_ext(
    src: &str,
    dst: &str,
    exts: &[u8],
    proto: u8,
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let chain: Vec<u8> = exts.iter().copied().chain([proto]).collect();
    let mut ip = vec![0x60, 0, 0, 0, 0, 0, chain[0], 64];
    ip.extend(src.parse::<std::net::Ipv6Addr>().unwrap().octets());
    ip.extend(dst.parse::<std::net::Ipv6Addr>().unwrap().octets());
    for (i, e) in exts.iter().enumerate() {
        // Each header is 8 bytes (length field 0), but hop-by-hop with 16 to test lengths.
        let (len, units) = match e {
            0 => (16, 1),
            _ => (8, 0),
        };
        let mut h = vec![chain[i + 1], units];
        h.resize(len, 0);
        ip.extend(h);
    }
    ip.extend(l4(proto, sport, dport));
    eth(0x86dd, &ip)
}

pub(super) fn v6(src: &str, dst: &str, proto: u8, sport: u16, dport: u16) -> Vec<u8> {
    v6_ext(src, dst, &[], proto, sport, dport)
}

pub(super) fn arp(sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&MAC_A);
    a.extend_from_slice(&sender);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&target);
    eth(0x0806, &a)
}

pub(super) const A: [u8; 4] = [10, 0, 0, 1];
pub(super) const B: [u8; 4] = [10, 0, 0, 2];
pub(super) const C: [u8; 4] = [192, 168, 1, 9];

fn m(filter: &str, frame: &[u8]) -> bool {
    parse(filter)
        .unwrap_or_else(|e| panic!("{filter}: {e}"))
        .matches(frame)
}

/// Which of `frames` the filter keeps, by index.
pub(super) fn kept(filter: &str, frames: &[Vec<u8>]) -> Vec<usize> {
    let f = parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
    (0..frames.len())
        .filter(|&i| f.matches(&frames[i]))
        .collect()
}

pub(super) fn sample() -> Vec<Vec<u8>> {
    vec![
        v4(A, B, 6, 40000, 179),                // 0 tcp A->B :179
        v4(B, A, 6, 179, 40000),                // 1 tcp B->A from :179
        v4(A, B, 17, 5353, 53),                 // 2 udp A->B :53
        v4(A, C, 1, 0, 0),                      // 3 icmp A->C
        v6("fd00::1", "fd00::2", 6, 1234, 22),  // 4 tcp6 :22
        v6("fd00::2", "fd00::1", 58, 0, 0),     // 5 icmp6
        v6("fd01::5", "fd00::1", 17, 9000, 53), // 6 udp6 :53
        arp(A, B),                              // 7 arp who-has B tell A
    ]
}

#[test]
fn protocols() {
    let f = sample();
    assert_eq!(kept("ip", &f), [0, 1, 2, 3]);
    assert_eq!(kept("ip6", &f), [4, 5, 6]);
    assert_eq!(kept("arp", &f), [7]);
    assert_eq!(kept("icmp", &f), [3]);
    assert_eq!(kept("icmp6", &f), [5]);
    assert_eq!(kept("tcp", &f), [0, 1, 4]);
    assert_eq!(kept("udp", &f), [2, 6]);
    assert_eq!(kept("ether", &f), [0, 1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn hosts_and_nets_with_directions() {
    let f = sample();
    // `host` also matches ARP's sender and target, as in pcap.
    assert_eq!(kept("host 10.0.0.1", &f), [0, 1, 2, 3, 7]);
    assert_eq!(kept("src host 10.0.0.1", &f), [0, 2, 3, 7]);
    assert_eq!(kept("dst host 10.0.0.1", &f), [1]);
    assert_eq!(kept("src 10.0.0.2", &f), [1], "the type defaults to host");
    assert_eq!(kept("ip host 10.0.0.1", &f), [0, 1, 2, 3]);
    assert_eq!(kept("arp host 10.0.0.2", &f), [7]);
    assert_eq!(kept("src and dst net 10.0.0.0/24", &f), [0, 1, 2, 7]);
    assert_eq!(kept("src or dst net 192.168.0.0/16", &f), [3]);
    assert_eq!(kept("net 0.0.0.0/0", &f), [0, 1, 2, 3, 7]);
    assert_eq!(kept("host fd00::1", &f), [4, 5, 6]);
    assert_eq!(kept("dst host fd00::1", &f), [5, 6]);
    assert_eq!(kept("ip6 net fd00::/16", &f), [4, 5, 6]);
    assert_eq!(kept("src net fd00::/64", &f), [4, 5]);
    assert_eq!(
        kept("10.0.0.2", &f),
        [0, 1, 2, 7],
        "a bare address is a host"
    );
    assert_eq!(kept("ether src 02:00:00:00:00:0a", &f).len(), 8);
    assert_eq!(
        kept("ether dst host 02:00:00:00:00:0a", &f),
        [] as [usize; 0]
    );
}

#[test]
fn ports_and_ranges_with_directions() {
    let f = sample();
    assert_eq!(kept("port 179", &f), [0, 1]);
    assert_eq!(kept("dst port 179", &f), [0]);
    assert_eq!(kept("src port 179", &f), [1]);
    assert_eq!(kept("tcp src port 179", &f), [1]);
    assert_eq!(kept("udp port 179", &f), [] as [usize; 0]);
    assert_eq!(kept("port 53", &f), [2, 6]);
    assert_eq!(kept("udp dst port 53", &f), [2, 6]);
    assert_eq!(kept("portrange 20-60", &f), [2, 4, 6]);
    assert_eq!(kept("src portrange 5000-9000", &f), [2, 6]);
    assert_eq!(kept("tcp portrange 1-1024", &f), [0, 1, 4]);
    // ICMP has no ports, whatever its bytes 0..4 hold.
    assert!(!m("port 0", &v4(A, B, 1, 0, 0)));
}

#[test]
fn ipv6_extension_headers_are_skipped() {
    // hop-by-hop (16 bytes), routing, destination options, then TCP.
    let f = v6_ext("fd00::1", "fd00::2", &[0, 43, 60], 6, 1234, 179);
    assert!(m("tcp", &f) && m("tcp dst port 179", &f) && m("ip6", &f));
    assert!(!m("udp", &f) && !m("port 1235", &f));
    // A first fragment carries the ports; a later one does not (as in pcap).
    let first = v6_ext("fd00::1", "fd00::2", &[44], 17, 5000, 53);
    assert!(m("udp port 53", &first));
    let mut later = first.clone();
    later[14 + 40 + 3] = 0x08; // fragment offset 1 (8 bytes)
    assert!(m("udp", &later) && !m("port 53", &later));
    // ICMPv6 behind a hop-by-hop header (as MLD reports are).
    assert!(m("icmp6", &v6_ext("fe80::1", "ff02::16", &[0], 58, 0, 0)));
}

#[test]
fn ipv4_fragments_after_the_first_have_no_ports() {
    assert!(
        m("port 53", &v4_frag(A, B, 17, 1, 53, 0x2000)),
        "MF set, offset 0"
    );
    let later = v4_frag(A, B, 17, 1, 53, 0x0010);
    assert!(m("udp and host 10.0.0.1", &later) && !m("port 53", &later));
}

#[test]
fn not_binds_tightest_and_and_or_group_left_to_right() {
    let f = sample();
    // pcap-filter(7): `and` and `or` have the same precedence, left to right. So
    // `a or b and c` is `(a or b) and c`, not `a or (b and c)`.
    assert_eq!(kept("udp or tcp and port 179", &f), [0, 1]);
    assert_eq!(kept("(udp or tcp) and port 179", &f), [0, 1]);
    assert_eq!(kept("udp or (tcp and port 179)", &f), [0, 1, 2, 6]);
    assert_eq!(kept("tcp and port 179 or udp", &f), [0, 1, 2, 6]);
    assert_eq!(kept("tcp && port 22 || arp", &f), [4, 7]);
    // `not` applies to the primitive right after it.
    assert_eq!(kept("not tcp and ip", &f), [2, 3]);
    assert_eq!(kept("not (tcp and ip)", &f), [2, 3, 4, 5, 6, 7]);
    assert_eq!(kept("! ip and ! ip6", &f), [7]);
    assert_eq!(kept("not not arp", &f), [7]);
    let prim = |p| Box::new(Filter::Prim(Prim::Proto(p)));
    assert_eq!(
        parse("udp or tcp and arp").unwrap(),
        Filter::And(
            Box::new(Filter::Or(prim(Proto::Udp), prim(Proto::Tcp))),
            prim(Proto::Arp)
        )
    );
}

#[test]
fn a_bare_value_repeats_the_previous_qualifiers() {
    let f = sample();
    assert_eq!(kept("port 179 or 22", &f), [0, 1, 4]);
    assert_eq!(kept("dst host 10.0.0.2 or 10.0.0.1", &f), [0, 1, 2, 7]);
    assert_eq!(kept("tcp dst port 179 or 22", &f), [0, 4]);
    assert_eq!(kept("host 10.0.0.1 and not 192.168.1.9", &f), [0, 1, 2, 7]);
}

#[test]
fn short_or_foreign_frames_never_match_and_never_panic() {
    let whole = v6_ext("fd00::1", "fd00::2", &[0, 44], 6, 1, 2);
    let f = parse("tcp or udp or port 2 or host fd00::1 or arp or icmp").unwrap();
    for n in 0..whole.len() {
        let _ = f.matches(&whole[..n]);
    }
    assert!(!f.matches(&[]));
    assert!(!m("ip or ip6 or arp", &eth(0x88cc, &[0; 40])), "LLDP");
}

#[test]
fn vlan_moves_what_follows_past_the_tag() {
    let udp = v4(A, B, 17, 5353, 53);
    let tag = |f: &[u8], tpid: u16, tci: u16| {
        let mut t = f[..12].to_vec();
        t.extend_from_slice(&tpid.to_be_bytes());
        t.extend_from_slice(&tci.to_be_bytes());
        t.extend_from_slice(&f[12..]);
        t
    };
    let one = tag(&udp, 0x8100, 0x2000 | 10);
    let two = tag(&one, 0x88a8, 20);
    assert!(m("vlan", &one) && m("vlan 10", &one) && !m("vlan 11", &one));
    assert!(!m("ip", &one) && m("vlan and ip", &one) && m("vlan 10 and udp port 53", &one));
    assert!(m("vlan 20 and vlan 10 and udp", &two) && !m("vlan 10 and vlan 20", &two));
    assert!(!m("vlan", &udp) && m("ip and not vlan", &udp));
    // As in pcap, the offsets move for everything after `vlan`, even across `or`.
    assert!(
        !m("vlan 10 or ip", &udp),
        "the `ip` after `vlan` reads past a tag"
    );
    assert!(!m("not vlan and ip", &udp));
    let prim = |p| Filter::Prim(p);
    assert_eq!(
        parse("vlan 10 and ip").unwrap(),
        Filter::And(
            Box::new(prim(Prim::Vlan(Some(10)))),
            Box::new(Filter::Tagged(1, Prim::Proto(Proto::Ip)))
        )
    );
}

#[test]
fn port_names_come_from_services() {
    let s = services::Services::parse(
        "ssh 22/tcp\nbgp 179/tcp\ndomain 53/tcp\ndomain 53/udp\nhttp 80/tcp www\n",
    );
    let p = |t: &str| parse::parse_with(t, &s);
    let port = |proto, lo: u16| {
        Filter::Prim(Prim::Port {
            proto,
            dir: Dir::Either,
            lo,
            hi: lo,
        })
    };
    assert_eq!(
        p("port bgp").unwrap(),
        port(Some(Proto::Tcp), 179),
        "as libpcap: tcp port 179"
    );
    assert_eq!(p("port domain").unwrap(), port(None, 53));
    assert_eq!(p("tcp port www").unwrap(), port(Some(Proto::Tcp), 80));
    assert!(matches!(
        p("portrange ssh-http").unwrap(),
        Filter::Prim(Prim::Port { lo: 22, hi: 80, .. })
    ));
    let e = p("udp port bgp").unwrap_err();
    assert_eq!(e.col, 10);
    assert!(e.what.contains("tcp service"), "{e}");
    let e = p("port bgpd").unwrap_err();
    assert!(
        e.what.contains("/etc/services") && e.hint.contains("179"),
        "{e}"
    );
}

#[test]
fn ip_protocols_by_number_and_name() {
    let f = sample();
    assert_eq!(kept("ip proto 6", &f), [0, 1]);
    assert_eq!(kept("ip6 proto 6", &f), [4]);
    assert_eq!(kept("proto 17", &f), [2, 6]);
    assert_eq!(kept("ip6 proto 58 or ip proto 1", &f), [3, 5]);
    assert_eq!(
        kept("ip proto 6 or 17", &f),
        [0, 1, 2],
        "a bare value repeats `ip proto`"
    );
    let s =
        services::Services::default().with_protocols("tcp 6 TCP\nudp 17 UDP\nospf 89 OSPFIGP\n");
    let p = |t: &str| parse::parse_with(t, &s);
    assert_eq!(
        p("ip proto ospf").unwrap(),
        Filter::Prim(Prim::IpProto {
            ip: Some(Proto::Ip),
            proto: 89
        })
    );
    assert_eq!(p("ip proto tcp").unwrap(), p("ip proto \\tcp").unwrap());
    assert!(
        p("proto bogus")
            .unwrap_err()
            .what
            .contains("/etc/protocols")
    );
    assert!(
        p("tcp proto 6")
            .unwrap_err()
            .what
            .contains("cannot qualify `proto`")
    );
}

fn refused(filter: &str) -> FilterError {
    match parse(filter) {
        Ok(f) => panic!("{filter} was accepted as {f:?}"),
        Err(e) => e,
    }
}

#[test]
fn bad_filters_name_the_column_and_give_a_hint() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 1, "empty"),
        ("tcp and", 8, "ends after `and`"),
        ("port 17x9", 6, "not a port number"),
        ("port nosuchservice", 6, "nor a name in /etc/services"),
        ("vlan 4096", 6, "not a VLAN id"),
        ("vlan and vlan and vlan", 19, "more than 2 `vlan`"),
        ("port 70000", 6, "not a port number"),
        ("portrange 10-5", 11, "empty"),
        ("portrange 10", 11, "not a port range"),
        ("host 10.0.0.300", 6, "not an IP address"),
        ("host router1", 6, "not an IP address"),
        ("net 10.0.0.1/8", 5, "bits set after its prefix"),
        ("net 10.0.0.0/33", 5, "prefix length"),
        ("host 10.0.0.0/8", 6, "a network, not a host"),
        ("ip6 host 10.0.0.1", 10, "not an address `ip6` can carry"),
        ("(tcp or udp", 1, "never closed"),
        ("tcp)", 4, "closes nothing"),
        ("tcp udp", 5, "nothing between them"),
        ("icmp port 7", 1, "`icmp` cannot qualify `port`"),
        ("tcp host 10.0.0.1", 1, "`tcp` cannot qualify `host`"),
        ("foo", 1, "unknown word `foo`"),
        ("tcp and port", 13, "value is missing"),
        ("port tcp", 6, "out of place"),
        ("ether host 02:00:00:00:00", 12, "not a MAC address"),
    ];
    for (filter, col, what) in cases {
        let e = refused(filter);
        assert_eq!(e.col, *col, "{filter}: {e}");
        assert!(e.what.contains(what), "{filter}: {e}");
        assert!(!e.hint.is_empty(), "{filter}: {e}");
    }
    let shown = refused("tcp and port 17x9").to_string();
    assert!(shown.contains("column 14"), "{shown}");
    assert!(
        shown.contains("\n  tcp and port 17x9\n               ^\n"),
        "the caret is under the column: {shown}"
    );
}

#[test]
fn what_the_subset_lacks_is_refused_by_name_pointing_at_tcpdump() {
    for (filter, col, word) in [
        ("greater 100", 1, "`greater`"),
        ("tcp and less 64", 9, "`less`"),
        ("mpls 10", 1, "`mpls`"),
        ("tcp[13] & 2 != 0", 4, "byte offsets"),
        ("ip broadcast", 4, "`broadcast`"),
        ("len > 100", 1, "`len`"),
        ("ether broadcast", 7, "`broadcast`"),
        ("port 1 or sctp", 11, "`sctp`"),
        ("(ip multicast)", 5, "`multicast`"),
    ] {
        let e = refused(filter);
        assert_eq!(e.col, col, "{filter}: {e}");
        assert!(e.what.contains(word), "{filter}: {e}");
        assert!(e.hint.contains("-w - | tcpdump -r -"), "{filter}: {e}");
    }
}

/// The frames each filter keeps, as tcpdump (libpcap) keeps them from a pcap file of the
/// same frames: frame i is written at second i and read back from `tcpdump -tt`.
pub(super) fn tcpdump_kept(filter: &str, frames: &[Vec<u8>]) -> Option<Vec<usize>> {
    use crate::runtime::capture::{write_header, write_record};
    let path = std::env::temp_dir().join(format!("nslab-filter-{}.pcap", std::process::id()));
    let mut pcap = Vec::new();
    write_header(&mut pcap).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let at = std::time::Duration::from_secs(i as u64 + 1);
        write_record(&mut pcap, at, f, f.len()).unwrap();
    }
    std::fs::write(&path, pcap).unwrap();
    let out = std::process::Command::new("tcpdump")
        .args(["-tt", "-n", "-q", "-r"])
        .arg(&path)
        .arg(filter)
        .output();
    let _ = std::fs::remove_file(&path);
    let out = out.ok()?;
    assert!(out.status.success(), "tcpdump {filter}: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let secs = text
        .lines()
        .filter_map(|l| l.split('.').next()?.parse::<usize>().ok());
    Some(secs.map(|s| s - 1).collect())
}

/// Frames where nslab and libpcap agree (see `the_subset_keeps_what_tcpdump_keeps`).
pub(super) fn cross_check_frames() -> Vec<Vec<u8>> {
    let mut frames = sample();
    frames.push(v4_frag(A, B, 17, 1, 53, 0x0010));
    frames.push(v4_frag(A, B, 6, 1, 179, 0x2000));
    // No IPv6 extension headers here: libpcap 1.10 follows only the fragment header, and
    // only to the protocol (`udp`, not `port 53`); nslab reads on to the ports (see
    // `ipv6_extension_headers_are_skipped`, and the README).
    frames.push(v6("fd00::3", "fd00::1", 6, 22, 1024));
    frames
}

/// Filters whose meaning tcpdump checks, here and against the BPF programs.
pub(super) const CROSS_CHECK: [&str; 26] = [
    "ip",
    "ip6",
    "arp",
    "icmp",
    "icmp6",
    "tcp",
    "udp",
    "host 10.0.0.1",
    "src host 10.0.0.1",
    "dst 10.0.0.1",
    "net 10.0.0.0/24",
    "src and dst net 10.0.0.0/24",
    "host fd00::1",
    "dst net fd00::/64",
    "port 179",
    "src port 179",
    "udp dst port 53",
    "portrange 20-60",
    "udp or tcp and port 179",
    "tcp and port 179 or udp",
    "not tcp and ip",
    "! ip and ! ip6",
    "port 179 or 22",
    "dst host 10.0.0.2 or 10.0.0.1",
    "ip6 and udp",
    "ether src 02:00:00:00:00:0a",
];

#[test]
fn the_subset_keeps_what_tcpdump_keeps() {
    let frames = cross_check_frames();
    let mut differ = Vec::new();
    for filter in CROSS_CHECK {
        let Some(theirs) = tcpdump_kept(filter, &frames) else {
            assert!(std::env::var_os("CI").is_none(), "tcpdump is not installed");
            return;
        };
        let ours = kept(filter, &frames);
        if ours != theirs {
            differ.push(format!("`{filter}`: nslab {ours:?}, tcpdump {theirs:?}"));
        }
    }
    assert!(differ.is_empty(), "{differ:#?}");
}

/// The filter comes from the command line, whose arguments may total 2 MiB: nesting or
/// chaining that deep must be an error, not a stack overflow in the parser, the matcher
/// or the tree's drop (each recursive).
#[test]
fn filters_nested_or_chained_without_bound_are_refused_not_a_crash() {
    // In a thread of the default stack (2 MiB), smaller than the main thread's.
    let deep = std::thread::Builder::new()
        .spawn(|| {
            let n = 200_000;
            let parens = format!("{}tcp{}", "(".repeat(n), ")".repeat(n));
            let nots = format!("{}tcp", "not ".repeat(n));
            let chain = format!("tcp{}", " and tcp".repeat(n));
            [parens, nots, chain].map(|f| parse(&f).map(|_| ()).map_err(|e| e.what))
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    for r in deep {
        let what = r.expect_err("refused");
        assert!(what.contains("at most"), "{what}");
    }
    // What people write still parses: a long list of hosts, a few levels of parentheses.
    let hosts: Vec<String> = (0..500)
        .map(|i| format!("host 10.0.{}.{}", i / 250, i % 250))
        .collect();
    assert!(parse(&hosts.join(" or ")).is_ok());
    assert!(parse(&format!("{}tcp{}", "(".repeat(30), ")".repeat(30))).is_ok());
    assert!(parse("not not not tcp").is_ok());
}
