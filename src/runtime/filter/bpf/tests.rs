//! The BPF programs against the matcher (the reference), frame by frame, in the test
//! interpreter; and against libpcap's own programs (`tcpdump -dd`).

use super::super::bpf_vm::{Skb, run};
use super::super::tests::{A, B, C, CROSS_CHECK, arp, cross_check_frames, eth, v4, v6, v6_ext};
use super::*;
use crate::runtime::filter::{matcher::masked, parse};

/// `frame` with a VLAN tag (TPID, TCI) after its MACs.
fn tag(frame: &[u8], tpid: u16, tci: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&tpid.to_be_bytes());
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

/// Every frame the tests use: the matcher's sample, fragments, extension headers, tags
/// (one, two, priority bits set), ARP inside a tag, LLDP, and odd IPv4 header lengths.
fn frames() -> Vec<Vec<u8>> {
    let mut f = cross_check_frames();
    f.push(v6_ext("fd00::1", "fd00::2", &[0, 43, 60], 6, 1234, 179));
    f.push(v6_ext("fd00::1", "fd00::2", &[44], 17, 5000, 53));
    let mut later = v6_ext("fd00::1", "fd00::2", &[44], 17, 5000, 53);
    later[14 + 40 + 3] = 0x08;
    f.push(later);
    f.push(v6_ext("fe80::1", "ff02::16", &[0], 58, 0, 0));
    f.push(v6_ext("fd00::1", "fd00::2", &[51], 6, 80, 22));
    f.push(v6_ext(
        "fd00::1",
        "fd00::2",
        &[0, 0, 0, 0, 0, 0, 0, 0],
        6,
        80,
        22,
    ));
    f.push(v6_ext(
        "fd00::1",
        "fd00::2",
        &[60, 60, 60, 60, 60, 60, 60],
        17,
        7,
        53,
    ));
    f.push(tag(&v4(A, B, 17, 5353, 53), 0x8100, 10));
    f.push(tag(
        &v6("fd00::1", "fd00::2", 6, 40000, 179),
        0x8100,
        0xe000 | 20,
    ));
    f.push(tag(&tag(&v4(C, A, 6, 22, 1024), 0x8100, 30), 0x88a8, 20));
    f.push(tag(&arp(A, B), 0x9100, 4095));
    f.push(tag(&arp(B, C), 0x8100, 10));
    f.push(eth(0x88cc, &[0; 40]));
    // An IPv4 header with options (IHL 6), and one with a bad IHL (4).
    let mut opts = v4(A, B, 6, 179, 40000);
    opts[14] = 0x46;
    opts.splice(34..34, [1, 1, 1, 1]);
    f.push(opts);
    let mut bad = v4(A, B, 17, 53, 53);
    bad[14] = 0x44;
    f.push(bad);
    f
}

/// How the kernel may hold `frame`: as it is, and, when its outer tag is one the kernel
/// takes out on receive (802.1Q, 802.1ad), with the tag in the metadata.
fn views(frame: &[u8]) -> Vec<(Vec<u8>, Option<u16>)> {
    let mut v = vec![(frame.to_vec(), None)];
    if frame.len() >= 18 && matches!(&frame[12..14], [0x81, 0x00] | [0x88, 0xa8]) {
        let mut data = frame[..12].to_vec();
        data.extend_from_slice(&frame[16..]);
        v.push((data, Some(u16::from_be_bytes([frame[14], frame[15]]))));
    }
    v
}

/// Where the program and the matcher disagree on `frame` cut at every length in `cuts`.
fn disagreements(filter: &Filter, prog: &[Insn], frame: &[u8], cuts: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    for &n in cuts {
        let n = n.min(frame.len());
        let cut = &frame[..n];
        let want = filter.matches(cut);
        for (data, tci) in views(cut) {
            let got = run(
                prog,
                &Skb {
                    data: &data,
                    vlan_tci: tci,
                },
            );
            assert!(got == 0 || got == KEEP, "{got}");
            if (got != 0) != want {
                out.push(format!(
                    "{filter:?} on {cut:02x?} (tag in metadata: {tci:?}): matcher {want}, bpf {}",
                    got != 0
                ));
            }
        }
    }
    out
}

fn every_length(frame: &[u8]) -> Vec<usize> {
    (0..=frame.len()).collect()
}

fn program(f: &Filter) -> Vec<Insn> {
    compile(f).unwrap_or_else(|| panic!("{f:?} does not compile"))
}

const MORE: [&str; 26] = [
    "ip proto 17",
    "ip6 proto 6 or ip6 proto 0",
    "proto 58 or proto 1",
    "vlan and proto 6",
    "vlan",
    "vlan 10",
    "vlan 20 and vlan 30",
    "vlan and ip",
    "vlan 10 and udp port 53",
    "not vlan",
    "vlan and arp host 10.0.0.2",
    "vlan 20 and vlan and tcp src port 22",
    "vlan and ip6 and tcp port 179",
    "ip or vlan and ip",
    "tcp port 179 and vlan",
    "ether dst 02:00:00:00:00:0b and vlan 10",
    "icmp6 or ip6 proto",
    "port 53 and udp",
    "tcp dst port 179",
    "ip6 src net fd00::/16",
    "net fd00::/127",
    "arp src host 10.0.0.1",
    "src and dst host 10.0.0.1",
    "host 192.168.1.9",
    "portrange 0-65535",
    "net 0.0.0.0/0 and not net ::/0",
];

#[test]
fn programs_agree_with_the_matcher_on_every_frame_cut_at_every_length() {
    let frames = frames();
    let mut differ = Vec::new();
    for text in CROSS_CHECK.iter().chain(MORE.iter()) {
        let Ok(f) = parse(text) else {
            // `ip6 proto` is refused: a filter the parser refuses needs no program.
            assert_eq!(*text, "icmp6 or ip6 proto");
            continue;
        };
        let prog = program(&f);
        for frame in &frames {
            differ.extend(disagreements(&f, &prog, frame, &every_length(frame)));
        }
    }
    assert!(
        differ.is_empty(),
        "{} disagreements: {:#?}",
        differ.len(),
        &differ[..differ.len().min(10)]
    );
}

/// A small deterministic generator (xorshift64*), so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

fn random_prim(r: &mut Rng) -> Prim {
    let dir = r.pick(&[Dir::Src, Dir::Dst, Dir::Either, Dir::Both]);
    match r.below(7) {
        6 => Prim::IpProto {
            ip: r.pick(&[None, Some(Proto::Ip), Some(Proto::Ip6)]),
            proto: r.pick(&[0, 1, 6, 17, 44, 58, 89]),
        },
        0 => Prim::Proto(r.pick(&[
            Proto::Ether,
            Proto::Ip,
            Proto::Ip6,
            Proto::Arp,
            Proto::Icmp,
            Proto::Icmp6,
            Proto::Tcp,
            Proto::Udp,
        ])),
        1 | 2 => {
            let v6 = r.below(2) == 0;
            let (addr, prefix, proto): (std::net::IpAddr, u8, Option<Proto>) = if v6 {
                let a = r.pick(&["fd00::1", "fd00::2", "fd01::5", "fe80::1", "ff02::16", "::"]);
                (
                    a.parse().unwrap(),
                    r.pick(&[0, 8, 16, 33, 64, 127, 128]),
                    r.pick(&[None, Some(Proto::Ip6)]),
                )
            } else {
                let a = r.pick(&[A, B, C, [10, 0, 0, 0], [0, 0, 0, 0]]);
                (
                    a.into(),
                    r.pick(&[0, 8, 16, 24, 31, 32]),
                    r.pick(&[None, Some(Proto::Ip), Some(Proto::Arp)]),
                )
            };
            Prim::Net {
                proto,
                dir,
                addr: masked(addr, prefix),
                prefix,
            }
        }
        3 => {
            let ports = [0, 7, 22, 53, 80, 179, 1024, 5000, 5353, 40000, 65535];
            let (a, b) = (r.pick(&ports), r.pick(&ports));
            let (lo, hi) = if r.below(2) == 0 {
                (a, a)
            } else {
                (a.min(b), a.max(b))
            };
            Prim::Port {
                proto: r.pick(&[None, Some(Proto::Tcp), Some(Proto::Udp)]),
                dir,
                lo,
                hi,
            }
        }
        4 => {
            let mac = r.pick(&[[2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb], [0xff; 6]]);
            Prim::Ether { dir, mac }
        }
        _ => Prim::Vlan(r.pick(&[None, Some(0), Some(10), Some(20), Some(30), Some(4095)])),
    }
}

fn random_filter(r: &mut Rng, depth: usize) -> Filter {
    let leaf = depth == 0 || r.below(3) == 0;
    if leaf {
        let p = random_prim(r);
        return match r.below(5) {
            0 => Filter::Tagged(1 + r.below(2) as u8, p),
            _ => Filter::Prim(p),
        };
    }
    let sub = |r: &mut Rng| Box::new(random_filter(r, depth - 1));
    match r.below(5) {
        0 => Filter::Not(sub(r)),
        1 | 2 => Filter::And(sub(r), sub(r)),
        _ => Filter::Or(sub(r), sub(r)),
    }
}

#[test]
fn random_filters_agree_with_the_matcher() {
    let frames = frames();
    let mut r = Rng(0x5eed_cafe_f00d_0001);
    let mut differ = Vec::new();
    let mut kept = 0usize;
    for _ in 0..1500 {
        let f = random_filter(&mut r, 4);
        let prog = program(&f);
        for frame in &frames {
            // The whole frame, and a cut somewhere inside it.
            let cut = r.below(frame.len() + 1);
            kept += usize::from(f.matches(frame));
            differ.extend(disagreements(&f, &prog, frame, &[frame.len(), cut]));
        }
    }
    assert!(
        differ.is_empty(),
        "{} disagreements: {:#?}",
        differ.len(),
        &differ[..differ.len().min(10)]
    );
    // The generator is worth something: it kept some frames and dropped others.
    let total = 1500 * frames.len();
    assert!(
        kept > total / 10 && kept < total * 9 / 10,
        "{kept} of {total}"
    );
}

#[test]
fn long_programs_jump_through_ja_and_still_agree() {
    // 60 IPv6 hosts: the accept is more than 255 instructions away from the first tests.
    let hosts: Vec<String> = (1..=60).map(|i| format!("fd00::{i:x}")).collect();
    let text = format!("host {}", hosts.join(" or "));
    let f = parse(&text).unwrap();
    let prog = program(&f);
    assert!(prog.len() > 300, "{}", prog.len());
    assert!(
        prog.iter().any(|i| i.code == JMP | JA && i.k > 255),
        "a long ja"
    );
    let mut differ = Vec::new();
    for frame in frames() {
        differ.extend(disagreements(&f, &prog, &frame, &[frame.len()]));
    }
    assert!(differ.is_empty(), "{differ:#?}");
    // The largest program the generator's filters can give stays far below the limit.
    let big = parse(
        "vlan and vlan and (tcp port 1 or udp port 2 or icmp6 or icmp) or tcp or port 3 or icmp6",
    )
    .unwrap();
    assert!(
        program(&big).len() < MAX_INSNS / 2,
        "{}",
        program(&big).len()
    );
}

/// libpcap's program for `filter`, from `tcpdump -dd` (`None`: no tcpdump here).
fn libpcap_program(filter: &str) -> Option<Vec<Insn>> {
    let out = std::process::Command::new("tcpdump")
        .args(["-dd", filter])
        .output()
        .ok()?;
    assert!(out.status.success(), "tcpdump -dd {filter}: {out:?}");
    Some(parse_dd(&String::from_utf8(out.stdout).unwrap()))
}

/// `tcpdump -dd` output as instructions.
fn parse_dd(text: &str) -> Vec<Insn> {
    let num = |s: &str| {
        let s = s.trim();
        match s.strip_prefix("0x") {
            Some(h) => u32::from_str_radix(h, 16).unwrap(),
            None => s.parse().unwrap(),
        }
    };
    text.lines()
        .map(|l| {
            let v: Vec<u32> = l
                .trim()
                .trim_start_matches('{')
                .trim_end_matches(',')
                .trim_end_matches('}')
                .split(',')
                .map(num)
                .collect();
            Insn {
                code: v[0] as u16,
                jt: v[1] as u8,
                jf: v[2] as u8,
                k: v[3],
            }
        })
        .collect()
}

#[test]
fn programs_keep_what_libpcaps_programs_keep() {
    // Tags inline only: without an interface libpcap compiles no metadata loads.
    let mut frames: Vec<Vec<u8>> = cross_check_frames();
    frames.push(tag(&v4(A, B, 17, 5353, 53), 0x8100, 10));
    frames.push(tag(&tag(&v4(C, A, 6, 22, 1024), 0x8100, 30), 0x88a8, 20));
    frames.push(tag(&arp(B, C), 0x8100, 10));
    let filters = CROSS_CHECK.iter().chain(&[
        "ip proto 17",
        "proto 6",
        "vlan",
        "vlan 10",
        "vlan and ip",
        "vlan 20 and vlan 30 and tcp",
        "vlan 10 and udp port 53",
        "port domain",
        "tcp port ssh",
    ]);
    let mut differ = Vec::new();
    for text in filters {
        let Some(theirs) = libpcap_program(text) else {
            assert!(std::env::var_os("CI").is_none(), "tcpdump is not installed");
            return;
        };
        let ours = program(&parse(text).unwrap());
        for (i, frame) in frames.iter().enumerate() {
            let skb = Skb {
                data: frame,
                vlan_tci: None,
            };
            let (a, b) = (run(&ours, &skb), run(&theirs, &skb));
            if a != b {
                differ.push(format!("`{text}` on frame {i}: nslab {a}, libpcap {b}"));
            }
        }
    }
    assert!(differ.is_empty(), "{differ:#?}");
}

#[test]
fn simple_programs_read_as_libpcap_writes_them() {
    // `ip`: the length check, the tag check, the ethertype; then libpcap's own ending.
    let p = program(&parse("ip").unwrap());
    assert_eq!(
        p.last(),
        Some(&Insn {
            code: RET,
            jt: 0,
            jf: 0,
            k: 0
        })
    );
    assert_eq!(
        p[p.len() - 2],
        Insn {
            code: RET,
            jt: 0,
            jf: 0,
            k: 262_144
        }
    );
    assert!(p.contains(&Insn {
        code: LD | H | ABS,
        jt: 0,
        jf: 0,
        k: 12
    }));
    // `tcp port 179` over IPv4 reads the header length as libpcap does.
    let p = program(&parse("tcp port 179").unwrap());
    assert!(
        p.contains(&Insn {
            code: LDX | op::B | MSH,
            jt: 0,
            jf: 0,
            k: 14
        }),
        "{}",
        dump(&p)
    );
    assert_eq!(
        reject_all(),
        [Insn {
            code: RET,
            jt: 0,
            jf: 0,
            k: 0
        }]
    );
}

#[test]
fn the_kernel_accepts_every_program() {
    // An AF_PACKET socket with protocol 0 and no bind receives nothing: the program is
    // only checked (jumps in bounds, scratch memory written before read, ancillary loads).
    let fd = match crate::sys::packet::unbound() {
        Ok(fd) => fd,
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "no packet socket: {e}");
            return;
        }
    };
    let attach = crate::runtime::capture::attach_filter;
    let mut r = Rng(0x5eed_cafe_f00d_0002);
    let mut filters: Vec<Filter> = CROSS_CHECK
        .iter()
        .chain(MORE.iter())
        .filter_map(|t| parse(t).ok())
        .collect();
    filters.extend((0..300).map(|_| random_filter(&mut r, 4)));
    let hosts: Vec<String> = (1..=60).map(|i| format!("fd00::{i:x}")).collect();
    filters.push(parse(&format!("host {}", hosts.join(" or "))).unwrap());
    for f in &filters {
        let prog = program(f);
        attach(&fd, &prog).unwrap_or_else(|e| panic!("{f:?}: {e}\n{}", dump(&prog)));
    }
}

#[test]
fn vlan_programs_keep_what_libpcaps_linux_programs_keep() {
    // With an interface (`-i lo`, root), libpcap on Linux reads the tag from the metadata
    // too; its programs and ours must agree on frames holding the tag either way.
    let theirs = |filter: &str| -> Option<Vec<Insn>> {
        let out = std::process::Command::new("tcpdump")
            .args(["-dd", "-i", "lo", filter])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| parse_dd(&String::from_utf8_lossy(&out.stdout)))
    };
    let frames = [
        tag(&v4(A, B, 17, 5353, 53), 0x8100, 10),
        tag(&v4(A, B, 17, 5353, 53), 0x8100, 11),
        tag(&tag(&v4(C, A, 6, 22, 1024), 0x8100, 30), 0x88a8, 20),
        tag(&arp(B, C), 0x8100, 10),
        v4(A, B, 17, 5353, 53),
    ];
    let mut differ = Vec::new();
    for text in [
        "vlan",
        "vlan 10",
        "vlan 10 and udp port 53",
        "vlan 20 and vlan 30 and tcp",
        "vlan and arp",
    ] {
        let Some(lib) = theirs(text) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "tcpdump -d -i lo failed (not root?)"
            );
            return;
        };
        let ours = program(&parse(text).unwrap());
        for (i, frame) in frames.iter().enumerate() {
            for (data, tci) in views(frame) {
                let skb = Skb {
                    data: &data,
                    vlan_tci: tci,
                };
                let (a, b) = (run(&ours, &skb), run(&lib, &skb));
                if a != b {
                    differ.push(format!(
                        "`{text}` frame {i} (metadata {tci:?}): nslab {a}, libpcap {b}"
                    ));
                }
            }
        }
    }
    assert!(differ.is_empty(), "{differ:#?}");
}
