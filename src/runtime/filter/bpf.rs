//! The filter as a classic BPF program (struct sock_filter, as libpcap emits for link type
//! Ethernet), for `SO_ATTACH_FILTER` on the capture's packet socket: the kernel then drops
//! the frames that do not match before they are copied to nslab.
//!
//! The program keeps the matcher's meaning exactly (the matcher is the reference, and the
//! tests run both on the same frames):
//! - a prologue decodes the frame once into scratch memory, per depth of VLAN tags the
//!   filter reads at: the ethertype, where layer 3 starts, the layer-4 protocol and the
//!   ports. IPv4's header length comes from `ldxb 4*([14]&0xf)`. IPv6 extension headers
//!   (hop-by-hop, routing, destination options, fragment, AH) are walked as the matcher
//!   walks them, at most 8, unrolled since classic BPF only jumps forward;
//! - a field the frame is too short for makes its primitive false, as in the matcher,
//!   never the whole program (an out-of-bounds load would drop the frame): loads are
//!   guarded by `len` checks;
//! - the kernel takes the outer VLAN tag out of a received frame into the skb's metadata
//!   (on veth too), while a frame sent through the interface keeps it inline. The program
//!   sees both as the matcher sees the frame with the tag put back: it reads the metadata
//!   with the ancillary loads `vlan_avail` and `vlan_tci`, as libpcap does on Linux.

use super::matcher::TPIDS;
use super::{Dir, Filter, MAX_TAGS, Prim, Proto};

/// One instruction, laid out as the kernel's `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// The opcodes used (linux/filter.h, linux/bpf_common.h).
pub mod op {
    pub const LD: u16 = 0x00;
    pub const LDX: u16 = 0x01;
    pub const ST: u16 = 0x02;
    pub const ALU: u16 = 0x04;
    pub const JMP: u16 = 0x05;
    pub const RET: u16 = 0x06;
    pub const MISC: u16 = 0x07;
    pub const W: u16 = 0x00;
    pub const H: u16 = 0x08;
    pub const B: u16 = 0x10;
    pub const IMM: u16 = 0x00;
    pub const ABS: u16 = 0x20;
    pub const IND: u16 = 0x40;
    pub const MEM: u16 = 0x60;
    pub const LEN: u16 = 0x80;
    pub const MSH: u16 = 0xa0;
    pub const ADD: u16 = 0x00;
    pub const SUB: u16 = 0x10;
    pub const AND: u16 = 0x50;
    pub const LSH: u16 = 0x60;
    pub const JA: u16 = 0x00;
    pub const JEQ: u16 = 0x10;
    pub const JGT: u16 = 0x20;
    pub const JGE: u16 = 0x30;
    pub const JSET: u16 = 0x40;
    pub const X: u16 = 0x08;
    pub const TAX: u16 = 0x00;
    pub const TXA: u16 = 0x80;
    /// Ancillary data: `SKF_AD_OFF + SKF_AD_VLAN_TAG` and `..._VLAN_TAG_PRESENT`.
    pub const AD_VLAN_TAG: u32 = 0xffff_f000 + 44;
    pub const AD_VLAN_TAG_PRESENT: u32 = 0xffff_f000 + 48;
    /// The scratch memory words (BPF_MEMWORDS).
    pub const MEMWORDS: u32 = 16;
}
use op::*;

/// What `ret` keeps of a matching frame: all of it (the capture's snap length).
pub const KEEP: u32 = super::super::capture::SNAPLEN;
/// The kernel's limit on a program's length (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;
/// No layer-4 protocol (a frame that is not IP, or too short): above any protocol number.
const NO_L4: u32 = 0x100;
/// No ports: above any port.
const NO_PORT: u32 = 0x1_0000;

/// The program that accepts nothing: attached while the socket's queue is drained.
pub fn reject_all() -> Vec<Insn> {
    vec![Insn {
        code: RET,
        jt: 0,
        jf: 0,
        k: 0,
    }]
}

/// The filter as a program, or `None` if it would exceed the kernel's limit.
pub fn compile(f: &Filter) -> Option<Vec<Insn>> {
    let mut needs = [Need::default(); MAX_TAGS as usize + 1];
    f.needs(&mut needs);
    let mut a = Asm::default();
    let (accept, reject) = (a.label(), a.label());
    // The matcher rejects a frame shorter than an Ethernet header, whatever the filter.
    a.stmt(LD | W | LEN, 0);
    let go = a.label();
    a.jump(JGE, 14, go, reject);
    a.place(go);
    a.prologue(&needs);
    a.expr(f, accept, reject);
    a.place(accept);
    a.stmt(RET, KEEP);
    a.place(reject);
    a.stmt(RET, 0);
    a.finish()
}

/// What the prologue decodes at one depth of tags.
#[derive(Debug, Default, Clone, Copy)]
struct Need {
    ethertype: bool,
    l4: bool,
}

impl Filter {
    fn needs(&self, n: &mut [Need]) {
        match self {
            Filter::Not(a) => a.needs(n),
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.needs(n);
                b.needs(n);
            }
            Filter::Prim(p) => p.needs(&mut n[0]),
            Filter::Tagged(d, p) => p.needs(&mut n[usize::from(*d)]),
        }
    }
}

impl Prim {
    fn needs(&self, n: &mut Need) {
        match self {
            Prim::Ether { .. } | Prim::Proto(Proto::Ether) => {}
            Prim::Proto(Proto::Ip | Proto::Ip6 | Proto::Arp) | Prim::Net { .. } | Prim::Vlan(_) => {
                n.ethertype = true
            }
            Prim::Proto(_) | Prim::Port { .. } | Prim::IpProto { .. } => {
                n.ethertype = true;
                n.l4 = true;
            }
        }
    }
}

/// Scratch memory words of depth `d`: ethertype, layer 3's offset, the layer-4 protocol,
/// source and destination port (the last two also serve the IPv6 walk as its "first
/// fragment" flag and its offset).
#[derive(Clone, Copy)]
struct Slots {
    ethertype: u32,
    l3: u32,
    l4: u32,
    sport: u32,
    dport: u32,
}

fn slots(depth: u8) -> Slots {
    let b = 5 * u32::from(depth);
    Slots {
        ethertype: b,
        l3: b + 1,
        l4: b + 2,
        sport: b + 3,
        dport: b + 4,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Label(usize);

/// One instruction before layout: conditional jumps and `ja` name labels.
#[derive(Debug, Clone, Copy)]
struct Op {
    code: u16,
    k: u32,
    jt: Option<Label>,
    jf: Option<Label>,
}

/// An assembler with forward labels; a conditional jump too far for its 8-bit offsets
/// becomes a jump to two `ja`s.
#[derive(Default)]
struct Asm {
    ops: Vec<Op>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    fn place(&mut self, l: Label) {
        self.labels[l.0] = Some(self.ops.len());
    }

    fn stmt(&mut self, code: u16, k: u32) {
        self.ops.push(Op {
            code,
            k,
            jt: None,
            jf: None,
        });
    }

    /// `A <cond> k` (or `A <cond> X` when `cond` has the X bit).
    fn jump(&mut self, cond: u16, k: u32, t: Label, f: Label) {
        self.ops.push(Op {
            code: JMP | cond,
            k,
            jt: Some(t),
            jf: Some(f),
        });
    }

    fn goto(&mut self, t: Label) {
        self.ops.push(Op {
            code: JMP | JA,
            k: 0,
            jt: Some(t),
            jf: None,
        });
    }

    fn is_cond(o: &Op) -> bool {
        o.jf.is_some()
    }

    /// Lays the program out: offsets from labels, long conditional jumps expanded.
    fn finish(self) -> Option<Vec<Insn>> {
        let mut long = vec![false; self.ops.len()];
        loop {
            let mut pos = Vec::with_capacity(self.ops.len() + 1);
            let mut p = 0usize;
            for (i, _) in self.ops.iter().enumerate() {
                pos.push(p);
                p += if long[i] { 3 } else { 1 };
            }
            pos.push(p);
            let at = |l: Label| pos[self.labels[l.0].expect("every label is placed")];
            let mut changed = false;
            for (i, o) in self.ops.iter().enumerate() {
                if Self::is_cond(o) && !long[i] {
                    let far = |l: Option<Label>| at(l.unwrap()) - (pos[i] + 1) > 255;
                    if far(o.jt) || far(o.jf) {
                        long[i] = true;
                        changed = true;
                    }
                }
            }
            if changed {
                continue;
            }
            if p > MAX_INSNS {
                return None;
            }
            let mut out = Vec::with_capacity(p);
            for (i, o) in self.ops.iter().enumerate() {
                let here = pos[i];
                let rel = |l: Option<Label>, from: usize| (at(l.unwrap()) - (from + 1)) as u32;
                let ins = |code, jt, jf, k| Insn { code, jt, jf, k };
                match (o.jt, o.jf) {
                    (Some(_), Some(_)) if long[i] => {
                        out.push(ins(o.code, 0, 1, o.k));
                        out.push(ins(JMP | JA, 0, 0, rel(o.jt, here + 1)));
                        out.push(ins(JMP | JA, 0, 0, rel(o.jf, here + 2)));
                    }
                    (Some(_), Some(_)) => out.push(ins(
                        o.code,
                        rel(o.jt, here) as u8,
                        rel(o.jf, here) as u8,
                        o.k,
                    )),
                    (Some(_), None) => out.push(ins(o.code, 0, 0, rel(o.jt, here))),
                    _ => out.push(ins(o.code, 0, 0, o.k)),
                }
            }
            return Some(out);
        }
    }

    /// Jumps to `fail` unless the frame holds `c` bytes from offset X on (A is lost,
    /// X kept).
    fn need(&mut self, c: u32, fail: Label) {
        let (ok1, ok) = (self.label(), self.label());
        self.stmt(LD | W | LEN, 0);
        self.jump(JGE | X, 0, ok1, fail);
        self.place(ok1);
        if c > 0 {
            self.stmt(ALU | SUB | X, 0);
            self.jump(JGE, c, ok, fail);
        }
        self.place(ok);
    }

    /// X = the offset of layer 3 at depth `d`.
    fn ldx_l3(&mut self, d: u8) {
        match d {
            0 => self.stmt(LDX | W | IMM, 14),
            _ => self.stmt(LDX | MEM, slots(d).l3),
        }
    }

    fn store(&mut self, k: u32, slot: u32) {
        self.stmt(LD | IMM, k);
        self.stmt(ST, slot);
    }

    /// Decodes, at each depth some primitive reads, what it needs into scratch memory.
    /// Every word is written first on the straight path, as the kernel's checker wants.
    fn prologue(&mut self, needs: &[Need]) {
        for (d, n) in needs.iter().enumerate() {
            let d = d as u8;
            if n.ethertype || n.l4 {
                self.ethertype(d);
            }
            if n.l4 {
                let s = slots(d);
                self.store(NO_L4, s.l4);
                self.store(NO_PORT, s.sport);
                self.stmt(ST, s.dport);
                let (v4, v6, done) = (self.label(), self.label(), self.label());
                let not4 = self.label();
                self.stmt(LD | MEM, s.ethertype);
                self.jump(JEQ, 0x0800, v4, not4);
                self.place(not4);
                self.jump(JEQ, 0x86dd, v6, done);
                self.place(v4);
                self.ipv4(d, done);
                self.place(v6);
                self.ipv6(d, done);
                self.place(done);
            }
        }
    }

    /// The ethertype at depth `d` (and where layer 3 starts): with the outer tag in the
    /// metadata, depth 0 sees its TPID and depth `d` reads 4 bytes less far.
    fn ethertype(&mut self, d: u8) {
        let s = slots(d);
        let done = self.label();
        if d == 0 {
            let (meta, inline) = (self.label(), self.label());
            self.stmt(LD | W | ABS, AD_VLAN_TAG_PRESENT);
            self.jump(JEQ, 1, meta, inline);
            self.place(meta);
            self.store(u32::from(TPIDS[0]), s.ethertype);
            self.goto(done);
            self.place(inline);
            self.stmt(LD | H | ABS, 12);
            self.stmt(ST, s.ethertype);
            self.place(done);
            return;
        }
        let l3 = 14 + 4 * u32::from(d);
        self.stmt(LD | W | ABS, AD_VLAN_TAG_PRESENT);
        self.stmt(ALU | LSH, 2);
        self.stmt(MISC | TAX, 0);
        self.stmt(LD | IMM, l3);
        self.stmt(ALU | SUB | X, 0);
        self.stmt(ST, s.l3);
        self.stmt(ALU | SUB, 2);
        self.stmt(MISC | TAX, 0);
        self.store(0, s.ethertype);
        self.need(2, done);
        self.stmt(LD | H | IND, 0);
        self.stmt(ST, s.ethertype);
        self.place(done);
    }

    /// IPv4: the protocol, and the ports of a first fragment with a whole header.
    fn ipv4(&mut self, d: u8, done: Label) {
        let s = slots(d);
        let ports = self.label();
        self.ldx_l3(d);
        self.need(20, done);
        self.stmt(LD | B | IND, 9);
        self.stmt(ST, s.l4);
        self.stmt(LD | H | IND, 6);
        let first = self.label();
        self.jump(JSET, 0x1fff, done, first);
        self.place(first);
        self.stmt(LD | MEM, s.l4);
        let udp = self.label();
        self.jump(JEQ, 6, ports, udp);
        self.place(udp);
        self.jump(JEQ, 17, ports, done);
        self.place(ports);
        let base = if d == 0 {
            // libpcap's idiom: X = 4 * the IHL.
            self.stmt(LDX | B | MSH, 14);
            self.stmt(MISC | TXA, 0);
            14
        } else {
            self.stmt(LD | B | IND, 0);
            self.stmt(ALU | AND, 0x0f);
            self.stmt(ALU | LSH, 2);
            0
        };
        let whole = self.label();
        self.jump(JGE, 20, whole, done);
        self.place(whole);
        if d > 0 {
            self.stmt(ALU | ADD | X, 0);
            self.stmt(MISC | TAX, 0);
        }
        self.need(base + 4, done);
        self.stmt(LD | H | IND, base);
        self.stmt(ST, s.sport);
        self.stmt(LD | H | IND, base + 2);
        self.stmt(ST, s.dport);
        self.goto(done);
    }

    /// IPv6: the next header, followed through at most 8 extension headers.
    fn ipv6(&mut self, d: u8, done: Label) {
        let s = slots(d);
        let (first, at) = (s.sport, s.dport);
        let none = self.label();
        self.ldx_l3(d);
        self.need(40, done);
        self.stmt(LD | B | IND, 6);
        self.stmt(ST, s.l4);
        self.store(1, first);
        self.stmt(MISC | TXA, 0);
        self.stmt(ALU | ADD, 40);
        self.stmt(ST, at);
        let walked = self.label();
        for _ in 0..8 {
            let next = self.label();
            self.ext_header(s, none, next, walked);
            self.place(next);
        }
        self.place(walked);
        let (ports, noports) = (self.label(), self.label());
        let (tcp, udp) = (self.label(), self.label());
        self.stmt(LD | MEM, first);
        self.jump(JEQ, 0, noports, tcp);
        self.place(tcp);
        self.stmt(LD | MEM, s.l4);
        self.jump(JEQ, 6, ports, udp);
        self.place(udp);
        self.jump(JEQ, 17, ports, noports);
        self.place(ports);
        self.stmt(LDX | MEM, at);
        self.need(4, noports);
        self.stmt(LD | H | IND, 0);
        self.stmt(ST, s.sport);
        self.stmt(LD | H | IND, 2);
        self.stmt(ST, s.dport);
        self.goto(done);
        self.place(noports);
        self.store(NO_PORT, s.sport);
        self.stmt(ST, s.dport);
        self.goto(done);
        // A header cut short: no protocol and no ports, as the matcher gives up there.
        self.place(none);
        self.store(NO_L4, s.l4);
        self.store(NO_PORT, s.sport);
        self.stmt(ST, s.dport);
        self.goto(done);
    }

    /// One step of the walk: if the next header is an extension header, read its own next
    /// header and skip it, then go on at `next`; otherwise the walk is over (`walked`).
    fn ext_header(&mut self, s: Slots, none: Label, next: Label, walked: Label) {
        let (first, at) = (s.sport, s.dport);
        let (opts, ah, frag) = (self.label(), self.label(), self.label());
        self.stmt(LD | MEM, s.l4);
        for (i, (nh, to)) in [(0, opts), (43, opts), (60, opts), (51, ah), (44, frag)]
            .into_iter()
            .enumerate()
        {
            let other = self.label();
            self.jump(JEQ, nh, to, if i == 4 { walked } else { other });
            self.place(other);
        }
        // Hop-by-hop, routing, destination options: (length + 1) * 8 bytes; AH:
        // (length + 2) * 4.
        for (to, add, shift) in [(opts, 1, 3), (ah, 2, 2)] {
            self.place(to);
            self.stmt(LDX | MEM, at);
            self.need(2, none);
            self.stmt(LD | B | IND, 0);
            self.stmt(ST, s.l4);
            self.stmt(LD | B | IND, 1);
            self.stmt(ALU | ADD, add);
            self.stmt(ALU | LSH, shift);
            self.stmt(ALU | ADD | X, 0);
            self.stmt(ST, at);
            self.goto(next);
        }
        // Fragment: 8 bytes; a non-zero offset (or a header cut short) means no ports.
        let (later, skip, offset) = (self.label(), self.label(), self.label());
        self.place(frag);
        self.stmt(LDX | MEM, at);
        self.need(1, none);
        self.stmt(LD | B | IND, 0);
        self.stmt(ST, s.l4);
        self.need(4, later);
        self.stmt(LD | H | IND, 2);
        self.jump(JSET, 0xfff8, later, offset);
        self.place(offset);
        self.goto(skip);
        self.place(later);
        self.store(0, first);
        self.place(skip);
        self.stmt(MISC | TXA, 0);
        self.stmt(ALU | ADD, 8);
        self.stmt(ST, at);
        self.goto(next);
    }

    /// Jumps to `t` if the expression holds, else to `f`.
    fn expr(&mut self, e: &Filter, t: Label, f: Label) {
        match e {
            Filter::Not(a) => self.expr(a, f, t),
            Filter::And(a, b) => {
                let mid = self.label();
                self.expr(a, mid, f);
                self.place(mid);
                self.expr(b, t, f);
            }
            Filter::Or(a, b) => {
                let mid = self.label();
                self.expr(a, t, mid);
                self.place(mid);
                self.expr(b, t, f);
            }
            Filter::Prim(p) => self.prim(p, 0, t, f),
            Filter::Tagged(d, p) => self.prim(p, *d, t, f),
        }
    }

    fn prim(&mut self, p: &Prim, d: u8, t: Label, f: Label) {
        let s = slots(d);
        match *p {
            Prim::Proto(Proto::Ether) => self.goto(t),
            Prim::Proto(Proto::Ip) => self.ethertype_is(d, 0x0800, t, f),
            Prim::Proto(Proto::Ip6) => self.ethertype_is(d, 0x86dd, t, f),
            Prim::Proto(Proto::Arp) => self.ethertype_is(d, 0x0806, t, f),
            Prim::Proto(Proto::Tcp) => self.l4_is(d, &[6], t, f),
            Prim::Proto(Proto::Udp) => self.l4_is(d, &[17], t, f),
            Prim::Proto(p @ (Proto::Icmp | Proto::Icmp6)) => {
                let (ty, proto) = if p == Proto::Icmp {
                    (0x0800, 1)
                } else {
                    (0x86dd, 58)
                };
                let ok = self.label();
                self.ethertype_is(d, ty, ok, f);
                self.place(ok);
                self.l4_is(d, &[proto], t, f);
            }
            Prim::Port { proto, dir, lo, hi } => {
                let ok = self.label();
                let protos: &[u32] = match proto {
                    Some(Proto::Tcp) => &[6],
                    Some(Proto::Udp) => &[17],
                    _ => &[6, 17],
                };
                self.l4_is(d, protos, ok, f);
                self.place(ok);
                self.by_dir(dir, t, f, &mut |a, which, t, f| {
                    let slot = if which == Dir::Src { s.sport } else { s.dport };
                    a.stmt(LD | MEM, slot);
                    a.in_range(u32::from(lo), u32::from(hi), t, f);
                });
            }
            Prim::Net { .. } => self.net(p, d, t, f),
            Prim::Ether { dir, mac } => self.by_dir(dir, t, f, &mut |a, which, t, f| {
                let at = if which == Dir::Src { 6 } else { 0 };
                let hi = u32::from(u16::from_be_bytes([mac[0], mac[1]]));
                let lo = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]);
                let half = a.label();
                a.stmt(LD | W | ABS, at + 2);
                a.jump(JEQ, lo, half, f);
                a.place(half);
                a.stmt(LD | H | ABS, at);
                a.jump(JEQ, hi, t, f);
            }),
            Prim::Vlan(id) => self.vlan(d, id, t, f),
            Prim::IpProto { ip, proto } => {
                let ok = self.label();
                self.stmt(LD | MEM, s.ethertype);
                match ip {
                    Some(Proto::Ip) => self.jump(JEQ, 0x0800, ok, f),
                    Some(_) => self.jump(JEQ, 0x86dd, ok, f),
                    None => self.one_of(&[0x0800, 0x86dd], ok, f),
                }
                self.place(ok);
                self.l4_is(d, &[u32::from(proto)], t, f);
            }
        }
    }

    fn ethertype_is(&mut self, d: u8, ty: u32, t: Label, f: Label) {
        self.stmt(LD | MEM, slots(d).ethertype);
        self.jump(JEQ, ty, t, f);
    }

    /// A is one of `values` (A is loaded here from the layer-4 protocol's word).
    fn l4_is(&mut self, d: u8, values: &[u32], t: Label, f: Label) {
        self.stmt(LD | MEM, slots(d).l4);
        self.one_of(values, t, f);
    }

    fn one_of(&mut self, values: &[u32], t: Label, f: Label) {
        for (i, v) in values.iter().enumerate() {
            let other = if i + 1 == values.len() {
                f
            } else {
                self.label()
            };
            self.jump(JEQ, *v, t, other);
            if other != f {
                self.place(other);
            }
        }
    }

    fn in_range(&mut self, lo: u32, hi: u32, t: Label, f: Label) {
        if lo == hi {
            self.jump(JEQ, lo, t, f);
            return;
        }
        let above = self.label();
        self.jump(JGE, lo, above, f);
        self.place(above);
        self.jump(JGT, hi, f, t);
    }

    /// `test(Src)`, `test(Dst)`, either or both, as `dir` says.
    fn by_dir(
        &mut self,
        dir: Dir,
        t: Label,
        f: Label,
        test: &mut dyn FnMut(&mut Asm, Dir, Label, Label),
    ) {
        match dir {
            Dir::Src | Dir::Dst => test(self, dir, t, f),
            Dir::Either => {
                let mid = self.label();
                test(self, Dir::Src, t, mid);
                self.place(mid);
                test(self, Dir::Dst, t, f);
            }
            Dir::Both => {
                let mid = self.label();
                test(self, Dir::Src, mid, f);
                self.place(mid);
                test(self, Dir::Dst, t, f);
            }
        }
    }

    /// `vlan [ID]` at depth `d`: the ethertype there is a TPID (depth 0 also with the tag
    /// in the metadata), and its TCI's low 12 bits are the id.
    fn vlan(&mut self, d: u8, id: Option<u16>, t: Label, f: Label) {
        let s = slots(d);
        let tagged = self.label();
        self.stmt(LD | MEM, s.ethertype);
        let tpids: Vec<u32> = TPIDS.iter().map(|&v| u32::from(v)).collect();
        let Some(id) = id else {
            self.one_of(&tpids, t, f);
            return;
        };
        self.one_of(&tpids, tagged, f);
        self.place(tagged);
        let inline = self.label();
        if d == 0 {
            let meta = self.label();
            self.stmt(LD | W | ABS, AD_VLAN_TAG_PRESENT);
            self.jump(JEQ, 1, meta, inline);
            self.place(meta);
            self.stmt(LD | W | ABS, AD_VLAN_TAG);
            self.stmt(ALU | AND, 0x0fff);
            self.jump(JEQ, u32::from(id), t, f);
        }
        self.place(inline);
        self.ldx_l3(d);
        self.need(2, f);
        self.stmt(LD | H | IND, 0);
        self.stmt(ALU | AND, 0x0fff);
        self.jump(JEQ, u32::from(id), t, f);
    }

    /// `[ip|ip6|arp] [dir] host|net`: IPv4 and ARP addresses, or IPv6's.
    fn net(&mut self, p: &Prim, d: u8, t: Label, f: Label) {
        let Prim::Net {
            proto,
            dir,
            addr,
            prefix,
        } = *p
        else {
            return;
        };
        let words = addr_words(addr, prefix);
        let s = slots(d);
        let (ip, arp) = (self.label(), self.label());
        self.stmt(LD | MEM, s.ethertype);
        if addr.is_ipv6() {
            self.jump(JEQ, 0x86dd, ip, f);
        } else {
            match proto {
                Some(Proto::Ip) => self.jump(JEQ, 0x0800, ip, f),
                Some(Proto::Arp) => self.jump(JEQ, 0x0806, arp, f),
                _ => {
                    let other = self.label();
                    self.jump(JEQ, 0x0800, ip, other);
                    self.place(other);
                    self.jump(JEQ, 0x0806, arp, f);
                }
            }
        }
        // IP: source at 12 (IPv6: 8), destination at 16 (24).
        self.place(ip);
        self.ldx_l3(d);
        let (len, src, dst) = if addr.is_ipv6() {
            (40, 8, 24)
        } else {
            (20, 12, 16)
        };
        self.need(len, f);
        self.addr_by_dir(dir, &words, src, dst, t, f);
        // ARP (Ethernet, IPv4): sender at 14, target at 24.
        self.place(arp);
        if addr.is_ipv4() && proto != Some(Proto::Ip) {
            self.ldx_l3(d);
            self.need(28, f);
            let (a, b) = (self.label(), self.label());
            let c = self.label();
            self.stmt(LD | H | IND, 0);
            self.jump(JEQ, 1, a, f);
            self.place(a);
            self.stmt(LD | H | IND, 2);
            self.jump(JEQ, 0x0800, b, f);
            self.place(b);
            self.stmt(LD | H | IND, 4);
            self.jump(JEQ, 0x0604, c, f);
            self.place(c);
            self.addr_by_dir(dir, &words, 14, 24, t, f);
        }
    }

    /// The address words at `src` and `dst` from X, compared under their masks.
    fn addr_by_dir(
        &mut self,
        dir: Dir,
        words: &[(u32, u32)],
        src: u32,
        dst: u32,
        t: Label,
        f: Label,
    ) {
        self.by_dir(dir, t, f, &mut |a, which, t, f| {
            let base = if which == Dir::Src { src } else { dst };
            for (i, &(mask, value)) in words.iter().enumerate() {
                if mask == 0 {
                    continue;
                }
                let next = a.label();
                a.stmt(LD | W | IND, base + 4 * i as u32);
                if mask != u32::MAX {
                    a.stmt(ALU | AND, mask);
                }
                a.jump(JEQ, value, next, f);
                a.place(next);
            }
            a.goto(t);
        });
    }
}

/// (mask, masked value) of each 32-bit word of `addr/prefix`.
fn addr_words(addr: std::net::IpAddr, prefix: u8) -> Vec<(u32, u32)> {
    let bytes = match addr {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    bytes
        .chunks(4)
        .enumerate()
        .map(|(i, c)| {
            let bits = (u32::from(prefix)).saturating_sub(32 * i as u32).min(32);
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            let v = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            (mask, v & mask)
        })
        .collect()
}

/// `tcpdump -d` style text, for error messages and reading programs.
pub fn dump(prog: &[Insn]) -> String {
    prog.iter()
        .enumerate()
        .map(|(i, x)| {
            format!(
                "({i:03}) code {:#06x} jt {} jf {} k {:#x}\n",
                x.code, x.jt, x.jf, x.k
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
