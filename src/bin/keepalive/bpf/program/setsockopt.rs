//! The cgroup/setsockopt program: records the program's own keepalive
//! options, takes ours back on SO_KEEPALIVE=0, rewrites under override
//! (see `program/mod.rs`).

use super::{socket_record, sockopt_call, KEEPALIVE_BIT, OPTION_VALUE, TIMERS};
use crate::bpf::asm::{Alu, Asm, Cond, Helper, Insn, Label, Reg, Size};
use crate::bpf::maps::OPTIONS;
use crate::bpf::record;
use std::os::fd::BorrowedFd;

/// `struct bpf_sockopt` offsets.
const SOCKOPT_SK: i16 = 0;
const SOCKOPT_OPTVAL: i16 = 8;
const SOCKOPT_OPTVAL_END: i16 = 16;
const SOCKOPT_LEVEL: i16 = 24;
const SOCKOPT_OPTNAME: i16 = 28;
const SOCKOPT_OPTLEN: i16 = 32;
/// Beyond this the program sees only a page of optval, and must say "use
/// the caller's own buffer" (optlen 0) or older kernels fail the call.
const PAGE_SIZE: u32 = 4096;

/// The cgroup/setsockopt program: records which keepalive options the
/// program set, takes ours back when it turns keepalive off
/// (`undo`: needs bpf_setsockopt here, Linux 5.15), and under override
/// rewrites its value for an option we set. Returns 1: the call goes on.
pub fn setsockopt(shared: BorrowedFd<'_>, undo: bool) -> Vec<Insn> {
    use Reg::*;
    let mut a = Asm::default();
    let (done, allow) = (a.label(), a.label());
    let blocks: Vec<Label> = OPTIONS.iter().map(|_| a.label()).collect();
    a.mov(R6, R1);
    a.load(Size::W, R2, R6, SOCKOPT_LEVEL);
    a.load(Size::W, R3, R6, SOCKOPT_OPTNAME);
    for (index, &(level, name)) in OPTIONS.iter().enumerate() {
        let other = a.label();
        a.jump32_imm(Cond::Ne, R2, level as u32, other);
        a.jump32_imm(Cond::Eq, R3, name as u32, blocks[index]);
        a.bind(other);
    }
    a.goto(done);

    for (index, block) in blocks.into_iter().enumerate() {
        let bit = 1u32 << index;
        a.bind(block);
        socket_record(&mut a, shared, SOCKOPT_SK, done);
        a.mov(R9, R0);
        // r2 = where the program's int value is, or done if it passed none.
        // The kernel gives us at least 16 bytes of optval whatever the
        // caller passed, so a short optlen shows only in optlen.
        a.load(Size::W, R3, R6, SOCKOPT_OPTLEN);
        a.jump32_imm(Cond::Lt, R3, 4, done);
        a.load(Size::Dw, R2, R6, SOCKOPT_OPTVAL);
        a.mov(R3, R2);
        a.alu_imm(Alu::Add, R3, 4);
        a.load(Size::Dw, R4, R6, SOCKOPT_OPTVAL_END);
        a.jump_reg(Cond::Gt, R3, R4, done);
        refused_value(&mut a, index, done);
        // Only a call the kernel will take is the program's choice, as in
        // the library (which records calls that returned 0).
        a.load(Size::W, R7, R9, record::OWNER);
        a.alu_imm(Alu::Or, R7, bit as i32);
        a.store(Size::W, R9, record::OWNER, R7);
        if bit == KEEPALIVE_BIT {
            keepalive_value(&mut a, undo, done);
        } else {
            // Under override, our value for an option we set.
            a.load(Size::W, R3, R9, record::STATE);
            a.jump32_imm(Cond::Eq, R3, 0, done);
            a.alu_imm(Alu::And, R3, record::OVERRIDDEN as i32);
            a.jump32_imm(Cond::Eq, R3, 0, done);
            a.load(Size::W, R3, R9, record::OURS);
            a.alu_imm(Alu::And, R3, bit as i32);
            a.jump32_imm(Cond::Eq, R3, 0, done);
            a.load(Size::W, R3, R9, record::VALUES + 4 * index as i16);
            a.store(Size::W, R2, 0, R3);
            a.goto(done);
        }
    }

    a.bind(done);
    a.load(Size::W, R2, R6, SOCKOPT_OPTLEN);
    a.jump32_imm(Cond::Le, R2, PAGE_SIZE, allow);
    a.store_imm(Size::W, R6, SOCKOPT_OPTLEN, 0); // "use the caller's buffer"
    a.bind(allow);
    a.mov_imm(R0, 1);
    a.exit();
    a.finish()
}

/// Goto `done` if the value at r2 is out of the kernel's range for
/// `OPTIONS[index]` (it answers EINVAL): the timers' bounds of
/// net/ipv4/tcp.c, and a user timeout must not be negative. SO_KEEPALIVE
/// takes any int. One unsigned compare: value - low > high - low.
fn refused_value(a: &mut Asm, index: usize, done: Label) {
    use Reg::*;
    let (low, high): (i32, i32) = match OPTIONS[index].1 {
        libc::TCP_KEEPIDLE | libc::TCP_KEEPINTVL => (1, 32767), // MAX_TCP_KEEP*
        libc::TCP_KEEPCNT => (1, 127),                          // MAX_TCP_KEEPCNT
        libc::TCP_USER_TIMEOUT => (0, i32::MAX),
        _ => return, // SO_KEEPALIVE
    };
    a.load(Size::W, R3, R2, 0);
    a.alu_imm(Alu::Add, R3, -low);
    a.jump32_imm(Cond::Gt, R3, (high - low) as u32, done);
}

/// SO_KEEPALIVE with its value at r2: recorded in r7 (the owner word, then
/// stored); turned off, what we set is taken back, as the library does:
/// the timers' values before ours, and no user timeout (ours would end an
/// idle connection the program no longer probes). Under override it is not
/// turned off: the call sets ours.
fn keepalive_value(a: &mut Asm, undo: bool, done: Label) {
    use Reg::*;
    let (off, taken_back) = (a.label(), a.label());
    a.load(Size::W, R3, R2, 0);
    a.jump32_imm(Cond::Eq, R3, 0, off);
    a.alu_imm(Alu::Or, R7, record::OWNER_KEEPALIVE_ON as i32);
    a.store(Size::W, R9, record::OWNER, R7);
    a.goto(done);

    // Under override, with keepalive ours, the call sets ours (1) instead,
    // as the library sets it again right after the program's call.
    a.bind(off);
    a.load(Size::W, R3, R9, record::STATE);
    a.alu_imm(Alu::And, R3, record::OVERRIDDEN as i32);
    a.jump32_imm(Cond::Eq, R3, 0, taken_back);
    a.load(Size::W, R3, R9, record::OURS);
    a.alu_imm(Alu::And, R3, KEEPALIVE_BIT as i32);
    a.jump32_imm(Cond::Eq, R3, 0, taken_back);
    a.store_imm(Size::W, R2, 0, 1);
    a.goto(done);

    a.bind(taken_back);
    a.alu_imm(Alu::And, R7, !(record::OWNER_KEEPALIVE_ON as i32));
    a.store(Size::W, R9, record::OWNER, R7);
    if !undo {
        a.goto(done);
        return;
    }
    // Each timer we set and whose value before is known, then our user
    // timeout (before ours it was 0: the program had not set it).
    for (bit, &(level, name)) in OPTIONS.iter().enumerate().skip(1) {
        let next = a.label();
        a.load(Size::W, R2, R9, record::OURS);
        a.alu_imm(Alu::And, R2, 1 << bit);
        a.jump32_imm(Cond::Eq, R2, 0, next);
        if bit <= TIMERS {
            a.load(Size::W, R2, R9, record::KNOWN);
            a.alu_imm(Alu::And, R2, 1 << bit);
            a.jump32_imm(Cond::Eq, R2, 0, next);
            a.load(Size::W, R2, R9, record::PREVIOUS + 4 * (bit as i16 - 1));
            a.store(Size::W, Fp, OPTION_VALUE, R2);
        } else {
            a.store_imm(Size::W, Fp, OPTION_VALUE, 0);
        }
        a.load(Size::Dw, R1, R6, SOCKOPT_SK);
        a.jump_imm(Cond::Eq, R1, 0, done);
        sockopt_call(a, Helper::Setsockopt, level, name, OPTION_VALUE);
        a.jump_imm(Cond::Ne, R0, 0, next);
        a.load(Size::W, R2, R9, record::OURS);
        a.alu_imm(Alu::And, R2, !(1 << bit));
        a.store(Size::W, R9, record::OURS, R2);
        a.bind(next);
    }
    a.goto(done);
}
