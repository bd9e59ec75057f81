//! The sock_ops program: decides each connection made or accepted in the
//! cgroup, unless an attachment of ours further down already did, and sets
//! the chosen plan's options (see `program/mod.rs`).

use super::{socket_record, sockopt_call, KEEPALIVE_BIT, OPTION_VALUE, TIMERS};
use crate::bpf::asm::{Alu, Asm, Cond, Helper, Insn, Label, Reg, Size};
use crate::bpf::maps::{self, OPTIONS};
use crate::bpf::record;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `struct bpf_sock_ops` offsets (linux/bpf.h).
const OPS_OP: i16 = 0;
const OPS_FAMILY: i16 = 20;
const OPS_REMOTE_IP4: i16 = 24;
const OPS_REMOTE_IP6: i16 = 32;
const OPS_REMOTE_PORT: i16 = 64;
const OPS_LOCAL_PORT: i16 = 68;
const OPS_SK: i16 = 184;
/// `enum` values of `bpf_sock_ops.op`.
const TCP_CONNECT_CB: u32 = 3;
const PASSIVE_ESTABLISHED_CB: u32 = 5;

/// The stack: the map key (and OPTION_VALUE, -8), the peer, the port.
const KEY: i16 = -4;
/// The peer's address as four 32-bit words in network byte order, IPv4
/// as `::ffff:a.b.c.d`.
const PEER: i16 = -24;
/// The service port: the remote one outbound, the local one inbound.
const PORT: i16 = -28;
/// An option's value before we set it.
const PREVIOUS_VALUE: i16 = -32;

/// `::ffff:` as the third address word, as it lies in memory.
fn mapped_word() -> u32 {
    u32::from_ne_bytes([0, 0, 0xff, 0xff])
}

/// The sock_ops program. `config`: this attachment's settings (`maps.rs`);
/// `shared`: the socket records of all our attachments.
pub fn sock_ops(config: BorrowedFd<'_>, shared: BorrowedFd<'_>) -> Vec<Insn> {
    use Reg::*;
    let mut a = Asm::default();
    let (outbound, inbound, lookup, done) = (a.label(), a.label(), a.label(), a.label());
    // r6: the context; r7: the direction bit; r8: the settings, then the
    // chosen plan; r9: the socket's record.
    a.mov(R6, R1);
    a.load(Size::W, R2, R6, OPS_OP);
    a.jump32_imm(Cond::Eq, R2, TCP_CONNECT_CB, outbound);
    a.jump32_imm(Cond::Eq, R2, PASSIVE_ESTABLISHED_CB, inbound);
    a.goto(done);

    a.bind(outbound);
    a.mov_imm(R7, maps::OUT as i32);
    // remote_port holds the network-order port in its upper 16 bits.
    a.load(Size::W, R2, R6, OPS_REMOTE_PORT);
    a.alu_imm(Alu::Rsh, R2, 16);
    a.be16_to_host(R2);
    a.store(Size::W, Fp, PORT, R2);
    a.goto(lookup);

    a.bind(inbound);
    a.mov_imm(R7, maps::IN as i32);
    a.load(Size::W, R2, R6, OPS_LOCAL_PORT); // host order
    a.store(Size::W, Fp, PORT, R2);

    a.bind(lookup);
    socket_record(&mut a, shared, OPS_SK, done);
    a.mov(R9, R0);
    // An attachment of ours further down decided it already: it wins.
    a.load(Size::W, R2, R9, record::STATE);
    a.jump32_imm(Cond::Set, R2, record::DECIDED, done);
    a.alu_imm(Alu::Or, R2, record::DECIDED as i32);
    a.store(Size::W, R9, record::STATE, R2);

    // r8 = the settings (entry 0 of the array map).
    a.store_imm(Size::W, Fp, KEY, 0);
    a.load_map(R1, config.as_raw_fd());
    a.mov(R2, Fp);
    a.alu_imm(Alu::Add, R2, KEY.into());
    a.call(Helper::MapLookupElem);
    a.jump_imm(Cond::Eq, R0, 0, done);
    a.mov(R8, R0);
    // KEEPALIVE_DIRECTION leaves this direction alone?
    a.load(Size::W, R2, R8, maps::FLAGS);
    a.alu(Alu::And, R2, R7);
    a.jump32_imm(Cond::Eq, R2, 0, done);

    peer_address(&mut a, done);
    let apply = a.label();
    first_matching_rule(&mut a, apply);
    a.bind(apply);
    turned_off_by_the_program(&mut a, done);
    chosen_where_unseen(&mut a, done);
    set_options(&mut a);

    a.bind(done);
    a.mov_imm(R0, 1);
    a.exit();
    a.finish()
}

/// The program turned keepalive off itself: nothing of ours, unless the
/// plan at r8 overrides (then our values win over that choice too).
fn turned_off_by_the_program(a: &mut Asm, done: Label) {
    use Reg::*;
    let judged = a.label();
    a.load(Size::W, R2, R8, maps::PLAN_FLAGS);
    a.jump32_imm(Cond::Set, R2, maps::OVERRIDE, judged);
    a.load(Size::W, R2, R9, record::OWNER);
    a.alu_imm(
        Alu::And,
        R2,
        (KEEPALIVE_BIT | record::OWNER_KEEPALIVE_ON) as i32,
    );
    a.jump32_imm(Cond::Eq, R2, KEEPALIVE_BIT, done);
    a.bind(judged);
}

/// Unless the plan overrides or the program's own SO_KEEPALIVE call is
/// recorded, keepalive already on means somebody chose it where we could
/// not see: before the attachment, or on an inherited listener. That
/// connection is left alone, as the library leaves such sockets.
fn chosen_where_unseen(a: &mut Asm, done: Label) {
    use Reg::*;
    let judged = a.label();
    a.load(Size::W, R2, R8, maps::PLAN_FLAGS);
    a.jump32_imm(Cond::Set, R2, maps::OVERRIDE, judged);
    a.load(Size::W, R2, R9, record::OWNER);
    a.jump32_imm(Cond::Set, R2, KEEPALIVE_BIT, judged);
    // bpf_getsockopt(SO_KEEPALIVE) exists since Linux 6.1; if it fails we
    // cannot tell, and go on.
    a.store_imm(Size::W, Fp, OPTION_VALUE, 0);
    a.mov(R1, R6);
    sockopt_call(
        a,
        Helper::Getsockopt,
        libc::SOL_SOCKET,
        libc::SO_KEEPALIVE,
        OPTION_VALUE,
    );
    a.jump_imm(Cond::Ne, R0, 0, judged);
    a.load(Size::W, R2, Fp, OPTION_VALUE);
    a.jump32_imm(Cond::Ne, R2, 0, done);
    a.bind(judged);
}

/// The peer's address into PEER (IPv4 as ::ffff:a.b.c.d); other families
/// are left alone.
fn peer_address(a: &mut Asm, done: Label) {
    use Reg::*;
    let (v4, known) = (a.label(), a.label());
    a.load(Size::W, R2, R6, OPS_FAMILY);
    a.jump32_imm(Cond::Eq, R2, libc::AF_INET as u32, v4);
    a.jump32_imm(Cond::Ne, R2, libc::AF_INET6 as u32, done);
    for word in 0..4 {
        a.load(Size::W, R3, R6, OPS_REMOTE_IP6 + 4 * word);
        a.store(Size::W, Fp, PEER + 4 * word, R3);
    }
    a.goto(known);

    a.bind(v4);
    a.store_imm(Size::W, Fp, PEER, 0);
    a.store_imm(Size::W, Fp, PEER + 4, 0);
    a.store_imm(Size::W, Fp, PEER + 8, mapped_word() as i32);
    a.load(Size::W, R3, R6, OPS_REMOTE_IP4);
    a.store(Size::W, Fp, PEER + 12, R3);
    a.bind(known);
}

/// r8 = the plan of the first rule that matches, else the global plan; then
/// goto `apply`. Unrolled over all MAX_RULES slots (no loop for the
/// verifier to bound); the rule count in the map ends the walk early.
fn first_matching_rule(a: &mut Asm, apply: Label) {
    use Reg::*;
    let unmatched = a.label();
    for index in 0..maps::MAX_RULES {
        let base = maps::RULES + index as i16 * maps::RULE_SIZE;
        let (next, ports, matched) = (a.label(), a.label(), a.label());
        a.load(Size::W, R2, R8, maps::RULE_COUNT);
        a.jump32_imm(Cond::Le, R2, index as u32, unmatched);
        a.load(Size::W, R2, R8, base + maps::RULE_FLAGS);
        // dir=
        a.mov(R3, R2);
        a.alu(Alu::And, R3, R7);
        a.jump32_imm(Cond::Eq, R3, 0, next);
        // net=: (peer ^ base) & mask == 0 over 128 bits. With IPv4 peers and
        // networks both written ::ffff:a.b.c.d, this is the library's rule:
        // an IPv6 network matches an IPv4 peer when it holds its mapped
        // form (::/0 does), and a real IPv6 peer is never in an IPv4 network.
        a.mov(R3, R2);
        a.alu_imm(Alu::And, R3, maps::HAS_NET as i32);
        a.jump32_imm(Cond::Eq, R3, 0, ports);
        for word in 0..4 {
            a.load(Size::W, R3, Fp, PEER + 4 * word);
            a.load(Size::W, R4, R8, base + maps::RULE_ADDRESS + 4 * word);
            a.alu(Alu::Xor, R3, R4);
            a.load(Size::W, R4, R8, base + maps::RULE_MASK + 4 * word);
            a.alu(Alu::And, R3, R4);
            a.jump32_imm(Cond::Ne, R3, 0, next);
        }
        // port=LOW-HIGH
        a.bind(ports);
        a.mov(R3, R2);
        a.alu_imm(Alu::And, R3, maps::HAS_PORTS as i32);
        a.jump32_imm(Cond::Eq, R3, 0, matched);
        a.load(Size::W, R3, Fp, PORT);
        a.load(Size::W, R4, R8, base + maps::RULE_PORT_LOW);
        a.jump_reg(Cond::Lt, R3, R4, next);
        a.load(Size::W, R4, R8, base + maps::RULE_PORT_HIGH);
        a.jump_reg(Cond::Gt, R3, R4, next);
        a.bind(matched);
        a.alu_imm(Alu::Add, R8, (base + maps::RULE_PLAN).into());
        a.goto(apply);
        a.bind(next);
    }
    a.bind(unmatched);
    a.alu_imm(Alu::Add, R8, maps::GLOBAL_PLAN.into());
}

/// What a timer was before we set it, kept in r9's record (`KNOWN`,
/// `PREVIOUS`) so that a later SO_KEEPALIVE=0 can put it back.
/// bpf_getsockopt reads the timers since Linux 6.0; before, nothing is kept.
fn previous_value(a: &mut Asm, bit: usize, level: i32, name: i32) {
    use Reg::*;
    let unknown = a.label();
    a.mov(R1, R6);
    sockopt_call(a, Helper::Getsockopt, level, name, PREVIOUS_VALUE);
    a.jump_imm(Cond::Ne, R0, 0, unknown);
    a.load(Size::W, R2, Fp, PREVIOUS_VALUE);
    a.store(Size::W, R9, record::PREVIOUS + 4 * (bit as i16 - 1), R2);
    a.load(Size::W, R2, R9, record::KNOWN);
    a.alu_imm(Alu::Or, R2, 1 << bit);
    a.store(Size::W, R9, record::KNOWN, R2);
    a.bind(unknown);
}

/// bpf_setsockopt for each option of the plan at r8 that the program did
/// not set (each one under override), recorded in r9's record.
fn set_options(a: &mut Asm) {
    use Reg::*;
    for (bit, &(level, name)) in OPTIONS.iter().enumerate() {
        let (skip, ours) = (a.label(), a.label());
        a.load(Size::W, R2, R8, maps::PLAN_FLAGS);
        a.jump32_imm(Cond::Eq, R2, 0, skip); // off: the plan sets nothing
        a.mov(R3, R2);
        a.alu_imm(Alu::And, R3, 1 << bit);
        a.jump32_imm(Cond::Eq, R3, 0, skip);
        a.jump32_imm(Cond::Set, R2, maps::OVERRIDE, ours);
        a.load(Size::W, R2, R9, record::OWNER);
        a.jump32_imm(Cond::Set, R2, 1 << bit, skip); // the program's value wins
        a.bind(ours);
        if (1..=TIMERS).contains(&bit) {
            previous_value(a, bit, level, name);
        }
        a.load(Size::W, R2, R8, maps::PLAN_VALUES + 4 * bit as i16);
        a.store(Size::W, Fp, OPTION_VALUE, R2);
        a.mov(R1, R6);
        sockopt_call(a, Helper::Setsockopt, level, name, OPTION_VALUE);
        a.jump_imm(Cond::Ne, R0, 0, skip);
        a.load(Size::W, R2, Fp, OPTION_VALUE);
        a.store(Size::W, R9, record::VALUES + 4 * bit as i16, R2);
        a.load(Size::W, R2, R9, record::OURS);
        a.alu_imm(Alu::Or, R2, 1 << bit);
        a.store(Size::W, R9, record::OURS, R2);
        a.bind(skip);
    }
    // Under override, the program's later calls get our values too.
    let kept = a.label();
    a.load(Size::W, R2, R8, maps::PLAN_FLAGS);
    a.jump32_imm(Cond::Eq, R2, 0, kept);
    a.alu_imm(Alu::And, R2, maps::OVERRIDE as i32);
    a.jump32_imm(Cond::Eq, R2, 0, kept);
    a.load(Size::W, R2, R9, record::STATE);
    a.alu_imm(Alu::Or, R2, record::OVERRIDDEN as i32);
    a.store(Size::W, R9, record::STATE, R2);
    a.bind(kept);
}
