//! Queueing disciplines for `impair`: a token bucket (tbf) for a plain rate, netem for
//! delay, loss and the rest. rtnetlink has no builders for either, so the messages are
//! assembled here from the kernel's structs (`tc_tbf_qopt`, `tc_netem_qopt`).

use rtnetlink::packet_core::DefaultNla;
use rtnetlink::packet_route::tc::{TcAttribute, TcHandle, TcMessage, TcOption};

use crate::model::Impair;

const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
const TCA_TBF_BURST: u16 = 6;
const TCA_NETEM_CORR: u16 = 1;
const TCA_NETEM_REORDER: u16 = 3;
const TCA_NETEM_CORRUPT: u16 = 4;
const TCA_NETEM_RATE: u16 = 6;
const TCA_NETEM_RATE64: u16 = 8;
const TCA_NETEM_LATENCY64: u16 = 10;
const TCA_NETEM_JITTER64: u16 = 11;
/// The kernel's scheduler tick is 64 ns (PSCHED_SHIFT 6).
const PSCHED_NS: u64 = 64;

/// `struct tc_ratespec` for a rate in bytes per second (saturating at u32; the 64-bit
/// attribute carries the full value).
fn ratespec(bytes_per_sec: u64) -> Vec<u8> {
    let mut v = vec![0u8, 1]; // cell_log, linklayer = ethernet (no rate table needed)
    v.extend_from_slice(&[0u8; 6]); // overhead, cell_align, mpu
    v.extend_from_slice(&(bytes_per_sec.min(u64::from(u32::MAX)) as u32).to_ne_bytes());
    v
}

fn ticks(bytes: u64, bytes_per_sec: u64) -> u32 {
    // In 128 bits: a burst of a fast link times 10^9 overflows 64.
    let ns = u128::from(bytes) * 1_000_000_000 / u128::from(bytes_per_sec.max(1));
    (ns / u128::from(PSCHED_NS)).min(u128::from(u32::MAX)) as u32
}

fn root(ifindex: u32, kind: &str, options: TcAttribute) -> TcMessage {
    let mut m = TcMessage::with_index(ifindex as i32);
    m.header.parent = TcHandle::ROOT;
    // No handle: with CREATE|REPLACE the kernel then changes a root qdisc of the same kind
    // in place and grafts a new one of another kind, keeping the old one if that fails
    // (a missing netem). A fixed handle makes a kind change fail with EINVAL instead.
    m.header.handle = TcHandle { major: 0, minor: 0 };
    m.attributes.push(TcAttribute::Kind(kind.into()));
    m.attributes.push(options);
    m
}

/// A token bucket at `rate` bits/s with a burst of 10 ms of traffic (at least 32 KiB) and
/// a queue of 100 ms.
pub fn tbf(ifindex: u32, rate_bits: u64) -> TcMessage {
    let rate = (rate_bits / 8).max(1);
    let burst = (rate / 100).max(32 * 1024);
    let limit = (rate / 10).max(64 * 1024);
    let mut parms = ratespec(rate);
    parms.extend([0u8; 12]); // peakrate: none
    for v in [limit.min(u64::from(u32::MAX)) as u32, ticks(burst, rate), 0] {
        parms.extend_from_slice(&v.to_ne_bytes());
    }
    let mut opts = vec![
        TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, parms)),
        TcOption::Other(DefaultNla::new(
            TCA_TBF_BURST,
            (burst.min(u64::from(u32::MAX)) as u32)
                .to_ne_bytes()
                .to_vec(),
        )),
    ];
    if rate > u64::from(u32::MAX) {
        opts.push(TcOption::Other(DefaultNla::new(
            TCA_TBF_RATE64,
            rate.to_ne_bytes().to_vec(),
        )));
    }
    root(ifindex, "tbf", TcAttribute::Options(opts))
}

/// Probability as the kernel's u32 fraction of 2^32-1.
fn prob(p: f64) -> u32 {
    (p.clamp(0.0, 1.0) * f64::from(u32::MAX)).round() as u32
}

/// netem: its options are a raw `tc_netem_qopt` followed by nested attributes, so the
/// whole TCA_OPTIONS payload is built here.
pub fn netem(ifindex: u32, imp: &Impair) -> TcMessage {
    let delay_ns = imp.delay.map(|d| d.as_nanos() as u64).unwrap_or(0);
    let jitter_ns = imp.jitter.map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut qopt = Vec::new();
    // latency and jitter in ticks (the 64-bit attributes below carry nanoseconds),
    // limit, loss, gap, duplicate.
    for v in [
        (delay_ns / PSCHED_NS).min(u64::from(u32::MAX)) as u32,
        1000,
        prob(imp.loss.unwrap_or(0.0)),
        0,
        prob(imp.duplicate.unwrap_or(0.0)),
        (jitter_ns / PSCHED_NS).min(u64::from(u32::MAX)) as u32,
    ] {
        qopt.extend_from_slice(&v.to_ne_bytes());
    }
    let nla = |buf: &mut Vec<u8>, kind: u16, payload: &[u8]| {
        let len = 4 + payload.len();
        buf.extend_from_slice(&(len as u16).to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(payload);
        while !buf.len().is_multiple_of(4) {
            buf.push(0);
        }
    };
    // Reorder, corrupt and rate go out even when unset (as zeros): netem changed in place
    // keeps the old value of any attribute that is missing, so a new impairment without
    // them would inherit the previous one's.
    nla(&mut qopt, TCA_NETEM_CORR, &[0u8; 12]);
    let mut p = prob(imp.reorder.unwrap_or(0.0)).to_ne_bytes().to_vec();
    p.extend_from_slice(&0u32.to_ne_bytes());
    nla(&mut qopt, TCA_NETEM_REORDER, &p);
    let mut p = prob(imp.corrupt.unwrap_or(0.0)).to_ne_bytes().to_vec();
    p.extend_from_slice(&0u32.to_ne_bytes());
    nla(&mut qopt, TCA_NETEM_CORRUPT, &p);
    let rate = imp.rate.unwrap_or(0) / 8;
    let mut p = (rate.min(u64::from(u32::MAX)) as u32)
        .to_ne_bytes()
        .to_vec();
    p.extend_from_slice(&[0u8; 12]); // packet_overhead, cell_size, cell_overhead
    nla(&mut qopt, TCA_NETEM_RATE, &p);
    if rate > u64::from(u32::MAX) {
        nla(&mut qopt, TCA_NETEM_RATE64, &rate.to_ne_bytes());
    }
    if delay_ns > 0 {
        nla(
            &mut qopt,
            TCA_NETEM_LATENCY64,
            &(delay_ns as i64).to_ne_bytes(),
        );
    }
    if jitter_ns > 0 {
        nla(
            &mut qopt,
            TCA_NETEM_JITTER64,
            &(jitter_ns as i64).to_ne_bytes(),
        );
    }
    root(
        ifindex,
        "netem",
        TcAttribute::Other(DefaultNla::new(2, qopt)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tbf_parameters_match_the_kernel_struct() {
        let m = tbf(3, 8_000_000);
        let TcAttribute::Options(opts) = &m.attributes[1] else {
            panic!()
        };
        let TcOption::Other(parms) = &opts[0] else {
            panic!()
        };
        let mut buf = vec![0u8; 36 + 4];
        use rtnetlink::packet_core::Emitable;
        parms.emit(&mut buf);
        // struct tc_tbf_qopt is 36 bytes: rate(12) peakrate(12) limit burst mtu.
        assert_eq!(parms.buffer_len(), 4 + 36);
        let rate = u32::from_ne_bytes(buf[4 + 8..4 + 12].try_into().unwrap());
        assert_eq!(rate, 1_000_000, "bytes per second");
        assert_eq!(m.header.index, 3);
    }

    #[test]
    fn bursts_of_very_fast_links_do_not_overflow() {
        // 10 ms at u64::MAX bytes/s: the product with 10^9 needs more than 64 bits.
        let rate = u64::MAX / 8;
        let t = ticks(rate / 100, rate);
        assert!(t.abs_diff((10_000_000 / PSCHED_NS) as u32) <= 1, "{t}");
        assert_eq!(ticks(u64::MAX, 1), u32::MAX);
        let _ = tbf(1, u64::MAX);
    }

    #[test]
    fn netem_carries_delay_and_loss() {
        let imp = Impair {
            delay: Some(std::time::Duration::from_millis(10)),
            loss: Some(0.5),
            ..Default::default()
        };
        let m = netem(2, &imp);
        assert!(matches!(&m.attributes[0], TcAttribute::Kind(k) if k == "netem"));
        let TcAttribute::Other(opt) = &m.attributes[1] else {
            panic!()
        };
        use rtnetlink::packet_core::Emitable;
        let mut buf = vec![0u8; opt.buffer_len()];
        opt.emit(&mut buf);
        let latency = u32::from_ne_bytes(buf[4..8].try_into().unwrap());
        assert_eq!(u64::from(latency), 10_000_000 / PSCHED_NS);
        let loss = u32::from_ne_bytes(buf[12..16].try_into().unwrap());
        assert_eq!(loss, u32::MAX / 2 + 1);
        // What is not set goes out as zero, so a change in place clears it.
        let attrs = nested(&buf[4..]);
        for kind in [TCA_NETEM_REORDER, TCA_NETEM_CORRUPT, TCA_NETEM_RATE] {
            let (_, p) = attrs.iter().find(|(k, _)| *k == kind).unwrap();
            assert!(p.iter().all(|b| *b == 0), "attribute {kind}: {p:?}");
        }
    }

    /// The nested attributes after netem's 24-byte `tc_netem_qopt`: (type, payload).
    fn nested(buf: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 24;
        while at + 4 <= buf.len() {
            let len = usize::from(u16::from_ne_bytes([buf[at], buf[at + 1]]));
            let kind = u16::from_ne_bytes([buf[at + 2], buf[at + 3]]);
            out.push((kind, buf[at + 4..at + len].to_vec()));
            at += len.next_multiple_of(4);
        }
        assert_eq!(at, buf.len(), "attributes fill the payload exactly");
        out
    }

    #[test]
    fn netem_message_carries_every_impairment_the_way_the_kernel_reads_it() {
        let imp = Impair {
            delay: Some(std::time::Duration::from_millis(20)),
            jitter: Some(std::time::Duration::from_millis(5)),
            loss: Some(0.01),
            duplicate: Some(0.005),
            corrupt: Some(0.001),
            reorder: Some(0.25),
            rate: Some(10_000_000),
        };
        let m = netem(7, &imp);
        assert_eq!(m.header.index, 7);
        assert_eq!(m.header.parent, TcHandle::ROOT);
        assert_eq!(m.header.handle, TcHandle { major: 0, minor: 0 });
        let TcAttribute::Other(opt) = &m.attributes[1] else {
            panic!("netem options are raw")
        };
        use rtnetlink::packet_core::Nla;
        assert_eq!(opt.kind(), 2, "TCA_OPTIONS");
        let mut buf = vec![0u8; opt.value_len()];
        opt.emit_value(&mut buf);
        let word = |i: usize| u32::from_ne_bytes(buf[i * 4..i * 4 + 4].try_into().unwrap());
        // tc_netem_qopt: latency, limit, loss, gap, duplicate, jitter.
        assert_eq!(u64::from(word(0)), 20_000_000 / PSCHED_NS);
        assert_eq!(word(1), 1000);
        assert_eq!(word(2), prob(0.01));
        assert_eq!(word(3), 0);
        assert_eq!(word(4), prob(0.005));
        assert_eq!(u64::from(word(5)), 5_000_000 / PSCHED_NS);
        let attrs = nested(&buf);
        let get = |kind: u16| {
            attrs
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, p)| p.clone())
                .unwrap_or_else(|| panic!("attribute {kind} missing: {attrs:?}"))
        };
        let u32_at = |p: &[u8], i: usize| u32::from_ne_bytes(p[i..i + 4].try_into().unwrap());
        assert_eq!(get(TCA_NETEM_CORR), vec![0u8; 12]);
        assert_eq!(u32_at(&get(TCA_NETEM_REORDER), 0), prob(0.25));
        assert_eq!(u32_at(&get(TCA_NETEM_CORRUPT), 0), prob(0.001));
        let rate = get(TCA_NETEM_RATE);
        assert_eq!(rate.len(), 16);
        assert_eq!(u32_at(&rate, 0), 10_000_000 / 8, "bytes per second");
        let ns = |p: Vec<u8>| i64::from_ne_bytes(p.try_into().unwrap());
        assert_eq!(ns(get(TCA_NETEM_LATENCY64)), 20_000_000);
        assert_eq!(ns(get(TCA_NETEM_JITTER64)), 5_000_000);
        assert!(
            !attrs.iter().any(|(k, _)| *k == TCA_NETEM_RATE64),
            "10mbit fits in 32 bits"
        );
        // Above 4 GB/s the rate needs its 64-bit attribute too.
        let fast = Impair {
            delay: Some(std::time::Duration::from_millis(1)),
            rate: Some(40_000_000_000),
            ..Default::default()
        };
        let TcAttribute::Other(opt) = &netem(7, &fast).attributes[1] else {
            panic!()
        };
        let mut buf = vec![0u8; opt.value_len()];
        opt.emit_value(&mut buf);
        let attrs = nested(&buf);
        let r64 = attrs.iter().find(|(k, _)| *k == TCA_NETEM_RATE64).unwrap();
        assert_eq!(
            u64::from_ne_bytes(r64.1.clone().try_into().unwrap()),
            5_000_000_000
        );
    }
}
