//! A classic BPF interpreter for the tests: runs a program on a frame as the kernel runs a
//! socket filter (an out-of-bounds load ends it with 0, the VLAN tag may sit in the
//! metadata), and panics on what the kernel's checker refuses (a scratch word read before
//! it is written, a jump out of the program) so a bad program fails the test.

use super::bpf::{Insn, op::*};

/// A frame as the kernel holds it: its bytes and a VLAN tag taken out into the metadata.
pub struct Skb<'a> {
    pub data: &'a [u8],
    pub vlan_tci: Option<u16>,
}

fn load(d: &[u8], at: u32, size: u16) -> Option<u32> {
    let at = at as usize;
    let n = match size {
        W => 4,
        H => 2,
        _ => 1,
    };
    let b = d.get(at..at.checked_add(n)?)?;
    Some(b.iter().fold(0u32, |v, x| (v << 8) | u32::from(*x)))
}

/// The program's return value: 0 drops the frame, more keeps that many bytes.
pub fn run(prog: &[Insn], skb: &Skb) -> u32 {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [None::<u32>; MEMWORDS as usize];
    let mut pc = 0usize;
    loop {
        let i = *prog
            .get(pc)
            .unwrap_or_else(|| panic!("pc {pc} runs off the program"));
        pc += 1;
        let class = i.code & 0x07;
        let size = i.code & 0x18;
        let mode = i.code & 0xe0;
        match class {
            LD | LDX => {
                let v = match mode {
                    IMM => i.k,
                    LEN => skb.data.len() as u32,
                    MEM => mem[i.k as usize].unwrap_or_else(|| {
                        panic!("M[{}] read before written (pc {})", i.k, pc - 1)
                    }),
                    ABS if i.k == AD_VLAN_TAG_PRESENT => u32::from(skb.vlan_tci.is_some()),
                    ABS if i.k == AD_VLAN_TAG => u32::from(skb.vlan_tci.unwrap_or(0)),
                    ABS => match load(skb.data, i.k, size) {
                        Some(v) => v,
                        None => return 0,
                    },
                    IND => match load(skb.data, x.wrapping_add(i.k), size) {
                        Some(v) => v,
                        None => return 0,
                    },
                    MSH => match load(skb.data, i.k, B) {
                        Some(v) => 4 * (v & 0x0f),
                        None => return 0,
                    },
                    _ => panic!("unknown load {:#x}", i.code),
                };
                if class == LD {
                    a = v;
                } else {
                    x = v;
                }
            }
            ST => mem[i.k as usize] = Some(a),
            0x03 => mem[i.k as usize] = Some(x),
            ALU => {
                let v = if i.code & X != 0 { x } else { i.k };
                a = match i.code & 0xf0 {
                    ADD => a.wrapping_add(v),
                    SUB => a.wrapping_sub(v),
                    0x20 => a.wrapping_mul(v),
                    0x30 => a.checked_div(v).unwrap_or(0),
                    0x40 => a | v,
                    AND => a & v,
                    LSH => a.checked_shl(v).unwrap_or(0),
                    0x70 => a.checked_shr(v).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 => a.checked_rem(v).unwrap_or(0),
                    0xa0 => a ^ v,
                    _ => panic!("unknown alu {:#x}", i.code),
                };
            }
            JMP => {
                let v = if i.code & X != 0 { x } else { i.k };
                let taken = match i.code & 0xf0 {
                    JA => {
                        pc += i.k as usize;
                        continue;
                    }
                    JEQ => a == v,
                    JGT => a > v,
                    JGE => a >= v,
                    JSET => a & v != 0,
                    _ => panic!("unknown jump {:#x}", i.code),
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            RET => return if i.code & 0x18 == 0x10 { a } else { i.k },
            MISC => {
                if i.code & 0xf8 == TXA {
                    a = x;
                } else {
                    x = a;
                }
            }
            _ => panic!("unknown class {:#x}", i.code),
        }
    }
}
