//! The two kernel-side programs, as annotated eBPF assembly. Both keep a
//! socket's record (`record.rs`) in the socket storage map that every
//! attachment of ours on the host shares.
//!
//! `sock_ops` runs in `connect()` (`TCP_CONNECT_CB`, before the SYN: also
//! for non-blocking, TFO and io_uring connects) and before `accept()` returns
//! a connection (`PASSIVE_ESTABLISHED_CB`). Programs of a cgroup run before
//! its ancestors': the first of ours to see a connection decides it and
//! marks it decided, and the others leave it alone, so the innermost
//! attachment wins, "off" included. It decides as the library would
//! (direction, then the first matching rule, else the global plan) and calls
//! `bpf_setsockopt` for each option of that plan the program did not set
//! itself (under override: each option of the plan).
//!
//! `setsockopt` runs before the kernel handles every `setsockopt()` of a
//! process in the cgroup. For the five keepalive options it records that the
//! program set them (and SO_KEEPALIVE's value); an SO_KEEPALIVE=0 takes back
//! the user timeout we set; under override it rewrites the program's value
//! for an option we set to ours. The storage is cloned into accepted
//! sockets, so a listener's record is its connections' record.

use super::asm::{Alu, Asm, Cond, Helper, Insn, Label, Reg, Size};
use super::maps::{self, OPTIONS};
use super::record;
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

const SK_STORAGE_GET_F_CREATE: i32 = 1;

/// The stack of `sock_ops`: the map key, one option value, and the peer.
const KEY: i16 = -4;
const OPTION_VALUE: i16 = -8;
/// The peer's address as four 32-bit words in network byte order, IPv4
/// as `::ffff:a.b.c.d`.
const PEER: i16 = -24;
/// The service port: the remote one outbound, the local one inbound.
const PORT: i16 = -28;

/// The bit of SO_KEEPALIVE and of TCP_USER_TIMEOUT in `OPTIONS` order.
const KEEPALIVE_BIT: u32 = 1;
const USER_TIMEOUT_INDEX: usize = 4;

/// `::ffff:` as the third address word, as it lies in memory.
fn mapped_word() -> u32 {
    u32::from_ne_bytes([0, 0, 0xff, 0xff])
}

/// r0 = the record of the socket at `ctx_reg + sk_offset` (created if
/// absent), or goto `done` if there is none.
fn socket_record(a: &mut Asm, shared: BorrowedFd<'_>, sk_offset: i16, done: Label) {
    use Reg::*;
    a.load(Size::Dw, R2, R6, sk_offset);
    a.jump_imm(Cond::Eq, R2, 0, done);
    a.load_map(R1, shared.as_raw_fd());
    a.mov_imm(R3, 0);
    a.mov_imm(R4, SK_STORAGE_GET_F_CREATE);
    a.call(Helper::SkStorageGet);
    a.jump_imm(Cond::Eq, R0, 0, done);
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
    // The program turned keepalive off itself: nothing of ours.
    a.load(Size::W, R2, R9, record::OWNER);
    a.alu_imm(
        Alu::And,
        R2,
        (KEEPALIVE_BIT | record::OWNER_KEEPALIVE_ON) as i32,
    );
    a.jump32_imm(Cond::Eq, R2, KEEPALIVE_BIT, done);

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
    chosen_where_unseen(&mut a, done);
    set_options(&mut a);

    a.bind(done);
    a.mov_imm(R0, 1);
    a.exit();
    a.finish()
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
    a.mov_imm(R2, libc::SOL_SOCKET);
    a.mov_imm(R3, libc::SO_KEEPALIVE);
    a.mov(R4, Fp);
    a.alu_imm(Alu::Add, R4, OPTION_VALUE.into());
    a.mov_imm(R5, 4);
    a.call(Helper::Getsockopt);
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
        a.load(Size::W, R2, R8, maps::PLAN_VALUES + 4 * bit as i16);
        a.store(Size::W, Fp, OPTION_VALUE, R2);
        a.mov(R1, R6);
        a.mov_imm(R2, level);
        a.mov_imm(R3, name);
        a.mov(R4, Fp);
        a.alu_imm(Alu::Add, R4, OPTION_VALUE.into());
        a.mov_imm(R5, 4);
        a.call(Helper::Setsockopt);
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

/// The cgroup/setsockopt program: records which keepalive options the
/// program set, takes our user timeout back when it turns keepalive off
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
        a.load(Size::W, R7, R9, record::OWNER);
        a.alu_imm(Alu::Or, R7, bit as i32);
        a.store(Size::W, R9, record::OWNER, R7);
        // r2 = the program's int value, or done if it passed none.
        a.load(Size::Dw, R2, R6, SOCKOPT_OPTVAL);
        a.mov(R3, R2);
        a.alu_imm(Alu::Add, R3, 4);
        a.load(Size::Dw, R4, R6, SOCKOPT_OPTVAL_END);
        a.jump_reg(Cond::Gt, R3, R4, done);
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

/// SO_KEEPALIVE with its value at r2: recorded in r7 (the owner word, then
/// stored); turned off, the user timeout we set is taken back, since it
/// would end an idle connection the program no longer probes.
fn keepalive_value(a: &mut Asm, undo: bool, done: Label) {
    use Reg::*;
    let off = a.label();
    a.load(Size::W, R2, R2, 0);
    a.jump32_imm(Cond::Eq, R2, 0, off);
    a.alu_imm(Alu::Or, R7, record::OWNER_KEEPALIVE_ON as i32);
    a.store(Size::W, R9, record::OWNER, R7);
    a.goto(done);

    a.bind(off);
    a.alu_imm(Alu::And, R7, !(record::OWNER_KEEPALIVE_ON as i32));
    a.store(Size::W, R9, record::OWNER, R7);
    if !undo {
        a.goto(done);
        return;
    }
    let user_timeout = 1 << USER_TIMEOUT_INDEX;
    a.load(Size::W, R2, R9, record::OURS);
    a.alu_imm(Alu::And, R2, user_timeout);
    a.jump32_imm(Cond::Eq, R2, 0, done);
    a.store_imm(Size::W, Fp, OPTION_VALUE, 0);
    a.load(Size::Dw, R1, R6, SOCKOPT_SK);
    a.jump_imm(Cond::Eq, R1, 0, done);
    a.mov_imm(R2, libc::IPPROTO_TCP);
    a.mov_imm(R3, libc::TCP_USER_TIMEOUT);
    a.mov(R4, Fp);
    a.alu_imm(Alu::Add, R4, OPTION_VALUE.into());
    a.mov_imm(R5, 4);
    a.call(Helper::Setsockopt);
    a.jump_imm(Cond::Ne, R0, 0, done);
    a.load(Size::W, R2, R9, record::OURS);
    a.alu_imm(Alu::And, R2, !user_timeout);
    a.store(Size::W, R9, record::OURS, R2);
    a.goto(done);
}

/// The BTF the socket storage map needs: `int` for its key, an array of
/// eight of them for its value (the record).
pub fn storage_btf() -> Vec<u8> {
    const BTF_MAGIC: u16 = 0xeb9f;
    const KIND_INT: u32 = 1;
    const KIND_ARRAY: u32 = 3;
    const INT_SIGNED: u32 = 1;
    let strings = b"\0int\0";
    let mut types = Vec::new();
    for word in [
        // [1] int
        1,              // name_off: "int"
        KIND_INT << 24, // info: kind, no members
        4,              // size in bytes
        INT_SIGNED << 24 | 32,
        // [2] int[8]: the record
        0,
        KIND_ARRAY << 24,
        0,
        1, // element type
        1, // index type
        record::SIZE / 4,
    ] {
        types.extend_from_slice(&u32::to_ne_bytes(word));
    }
    let mut blob = Vec::new();
    blob.extend_from_slice(&BTF_MAGIC.to_ne_bytes());
    blob.push(1); // version
    blob.push(0); // flags
    for word in [
        24u32,
        0,
        types.len() as u32,
        types.len() as u32,
        strings.len() as u32,
    ] {
        // hdr_len, type_off, type_len, str_off, str_len
        blob.extend_from_slice(&word.to_ne_bytes());
    }
    blob.extend_from_slice(&types);
    blob.extend_from_slice(strings);
    blob
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::BorrowedFd;

    fn fake_fd() -> BorrowedFd<'static> {
        // SAFETY: the number is only copied into instructions, never used.
        unsafe { BorrowedFd::borrow_raw(100) }
    }

    #[test]
    fn programs_assemble_and_stay_small() {
        let ops = sock_ops(fake_fd(), fake_fd());
        // About 35 instructions per rule slot plus the frame.
        assert!(ops.len() < 4096, "{}", ops.len());
        assert_eq!(ops.last().unwrap().code, 0x95, "ends with exit");
        for undo in [true, false] {
            let set = setsockopt(fake_fd(), undo);
            assert!(set.len() < 256, "{}", set.len());
        }
    }

    #[test]
    fn btf_header_is_24_bytes_and_lengths_add_up() {
        let blob = storage_btf();
        assert_eq!(blob.len(), 24 + 16 + 24 + 5);
        assert_eq!(&blob[..2], &0xeb9fu16.to_ne_bytes());
    }
}
