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
//! itself (under override: each option of the plan, also where the program
//! turned keepalive off).
//!
//! `setsockopt` runs before the kernel handles every `setsockopt()` of a
//! process in the cgroup. For the five keepalive options it records that the
//! program set them (and SO_KEEPALIVE's value), unless the kernel will refuse
//! the call; an SO_KEEPALIVE=0 takes back what we set; under override it
//! rewrites the program's value for an option we set to ours, SO_KEEPALIVE=0
//! included. The storage is cloned into accepted
//! sockets, so a listener's record is its connections' record.

mod setsockopt;
mod sock_ops;

pub use setsockopt::setsockopt;
pub use sock_ops::sock_ops;

use super::asm::{Alu, Asm, Cond, Helper, Label, Reg, Size};
use super::record;
use std::os::fd::{AsRawFd, BorrowedFd};

const SK_STORAGE_GET_F_CREATE: i32 = 1;

/// A stack slot of both programs: one option value for a helper call.
const OPTION_VALUE: i16 = -8;

/// The bit of SO_KEEPALIVE in `OPTIONS` order;
/// the timers are `OPTIONS[1..=TIMERS]`.
const KEEPALIVE_BIT: u32 = 1;
const TIMERS: usize = 3;

/// r0 = the record of the socket at r6 (the context) + `sk_offset` (created if
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

/// bpf_getsockopt or bpf_setsockopt (`helper`) of `level`/`name` on the
/// socket already in r1, through the 4-byte stack slot at `slot`; r0 = its
/// result.
fn sockopt_call(a: &mut Asm, helper: Helper, level: i32, name: i32, slot: i16) {
    use Reg::*;
    a.mov_imm(R2, level);
    a.mov_imm(R3, name);
    a.mov(R4, Fp);
    a.alu_imm(Alu::Add, R4, slot.into());
    a.mov_imm(R5, 4);
    a.call(helper);
}

/// The BTF the socket storage map needs: `int` for its key, an array of
/// `record::SIZE / 4` of them for its value (the record).
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
        // [2] int[12]: the record
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
        // About 260 with the undo: five option blocks, their range checks,
        // the undo's four helper calls and the override of SO_KEEPALIVE=0.
        // A bound to notice growth, far below the verifier's 4096.
        for undo in [true, false] {
            let set = setsockopt(fake_fd(), undo);
            assert!(set.len() < 320, "{}", set.len());
        }
    }

    #[test]
    fn btf_header_is_24_bytes_and_lengths_add_up() {
        let blob = storage_btf();
        assert_eq!(blob.len(), 24 + 16 + 24 + 5);
        assert_eq!(&blob[..2], &0xeb9fu16.to_ne_bytes());
    }
}
