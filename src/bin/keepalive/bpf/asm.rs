//! A small typed assembler for eBPF instructions (the kernel's
//! Documentation/bpf/standardization/instruction-set.rst): registers, sizes
//! and jumps are Rust types, and jump targets are labels resolved at the end,
//! so the programs in `program/` read like annotated assembly.

/// One 8-byte instruction as the kernel reads it (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

/// r0: return values; r1-r5: helper arguments (clobbered by calls);
/// r6-r9: kept across calls; r10: the read-only frame pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub enum Reg {
    R0 = 0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    Fp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub enum Size {
    W = 0x00,
    H = 0x08,
    B = 0x10,
    Dw = 0x18,
}

/// Arithmetic (64-bit, `BPF_ALU64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub enum Alu {
    Add = 0x00,
    Sub = 0x10,
    Or = 0x40,
    And = 0x50,
    Lsh = 0x60,
    Rsh = 0x70,
    Xor = 0xa0,
    Mov = 0xb0,
}

/// Conditions, compared on the low 32 bits (`BPF_JMP32`) or all 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub enum Cond {
    Eq = 0x10,
    /// Unsigned >.
    Gt = 0x20,
    Ge = 0x30,
    /// Any bit in common.
    Set = 0x40,
    Ne = 0x50,
    /// Unsigned <.
    Lt = 0xa0,
    Le = 0xb0,
}

/// Kernel helper functions (`enum bpf_func_id` in linux/bpf.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Helper {
    MapLookupElem = 1,
    Setsockopt = 49,
    Getsockopt = 57,
    SkStorageGet = 107,
}

/// A jump target, bound to an instruction index with `Asm::bind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(usize);

const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const ALU: u8 = 0x04;
const JMP: u8 = 0x05;
const JMP32: u8 = 0x06;
const ALU64: u8 = 0x07;
const MEM: u8 = 0x60;
const IMM: u8 = 0x00;
const SRC_X: u8 = 0x08;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;
const END: u8 = 0xd0;
const TO_BE: u8 = 0x08;
/// `src_reg` of a 64-bit immediate load holding a map's file descriptor.
const PSEUDO_MAP_FD: u8 = 1;

#[derive(Default)]
pub struct Asm {
    insns: Vec<Insn>,
    /// Instruction index of each bound label.
    labels: Vec<Option<usize>>,
    /// (instruction index, label) of each jump to patch.
    fixups: Vec<(usize, Label)>,
}

fn regs(dst: Reg, src: Reg) -> u8 {
    (dst as u8) | ((src as u8) << 4)
}

impl Asm {
    fn emit(&mut self, code: u8, dst: Reg, src: Reg, off: i16, imm: i32) {
        self.insns.push(Insn {
            code,
            regs: regs(dst, src),
            off,
            imm,
        });
    }

    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// The next instruction is `label`'s target.
    pub fn bind(&mut self, label: Label) {
        self.labels[label.0] = Some(self.insns.len());
    }

    /// dst = imm (64-bit, sign-extended).
    pub fn mov_imm(&mut self, dst: Reg, imm: i32) {
        self.emit(ALU64 | Alu::Mov as u8, dst, Reg::R0, 0, imm);
    }

    pub fn mov(&mut self, dst: Reg, src: Reg) {
        self.emit(ALU64 | Alu::Mov as u8 | SRC_X, dst, src, 0, 0);
    }

    /// dst op= imm (64-bit).
    pub fn alu_imm(&mut self, op: Alu, dst: Reg, imm: i32) {
        self.emit(ALU64 | op as u8, dst, Reg::R0, 0, imm);
    }

    /// dst op= src (64-bit).
    pub fn alu(&mut self, op: Alu, dst: Reg, src: Reg) {
        self.emit(ALU64 | op as u8 | SRC_X, dst, src, 0, 0);
    }

    /// dst = the 16-bit value in network byte order turned into host order
    /// (a byte swap on little-endian machines, nothing on big-endian ones).
    pub fn be16_to_host(&mut self, dst: Reg) {
        self.emit(ALU | END | TO_BE, dst, Reg::R0, 0, 16);
    }

    /// dst = *(size *)(src + off), zero-extended.
    pub fn load(&mut self, size: Size, dst: Reg, src: Reg, off: i16) {
        self.emit(LDX | MEM | size as u8, dst, src, off, 0);
    }

    /// *(size *)(dst + off) = src.
    pub fn store(&mut self, size: Size, dst: Reg, off: i16, src: Reg) {
        self.emit(STX | MEM | size as u8, dst, src, off, 0);
    }

    /// *(size *)(dst + off) = imm.
    pub fn store_imm(&mut self, size: Size, dst: Reg, off: i16, imm: i32) {
        self.emit(ST | MEM | size as u8, dst, Reg::R0, off, imm);
    }

    /// dst = the map whose file descriptor is `fd` (two instruction slots;
    /// the kernel replaces the descriptor with the map's address).
    pub fn load_map(&mut self, dst: Reg, fd: i32) {
        self.emit(LD | IMM | Size::Dw as u8, dst, Reg::R0, 0, fd);
        self.insns.last_mut().expect("just pushed").regs |= PSEUDO_MAP_FD << 4;
        self.emit(0, Reg::R0, Reg::R0, 0, 0);
    }

    fn jump_to(&mut self, code: u8, dst: Reg, src: Reg, imm: i32, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.emit(code, dst, src, 0, imm);
    }

    pub fn goto(&mut self, target: Label) {
        self.jump_to(JMP, Reg::R0, Reg::R0, 0, target);
    }

    /// if (u32)dst cond (u32)imm goto target: immediates compare as 32-bit
    /// values, never sign-extended against a zero-extended load.
    pub fn jump32_imm(&mut self, cond: Cond, dst: Reg, imm: u32, target: Label) {
        self.jump_to(JMP32 | cond as u8, dst, Reg::R0, imm as i32, target);
    }

    /// if dst cond src goto target, on all 64 bits.
    pub fn jump_reg(&mut self, cond: Cond, dst: Reg, src: Reg, target: Label) {
        self.jump_to(JMP | cond as u8 | SRC_X, dst, src, 0, target);
    }

    /// if dst cond imm goto target, on all 64 bits (pointers against 0).
    pub fn jump_imm(&mut self, cond: Cond, dst: Reg, imm: i32, target: Label) {
        self.jump_to(JMP | cond as u8, dst, Reg::R0, imm, target);
    }

    /// r0 = helper(r1, ..., r5); r1-r5 are clobbered.
    pub fn call(&mut self, helper: Helper) {
        self.emit(JMP | CALL, Reg::R0, Reg::R0, 0, helper as i32);
    }

    pub fn exit(&mut self) {
        self.emit(JMP | EXIT, Reg::R0, Reg::R0, 0, 0);
    }

    /// The finished program. Panics on an unbound label or a jump too far
    /// for 16 bits: both are bugs in the program text, found by its tests.
    pub fn finish(mut self) -> Vec<Insn> {
        for &(at, label) in &self.fixups {
            let target = self.labels[label.0].expect("jump to an unbound label");
            let offset = target as i64 - at as i64 - 1;
            self.insns[at].off = i16::try_from(offset).expect("jump out of 16-bit range");
        }
        self.insns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_the_kernel_headers() {
        let mut asm = Asm::default();
        let end = asm.label();
        asm.mov_imm(Reg::R0, 1); // BPF_MOV64_IMM(BPF_REG_0, 1)
        asm.load(Size::W, Reg::R2, Reg::R1, 64); // BPF_LDX_MEM(BPF_W, 2, 1, 64)
        asm.jump32_imm(Cond::Eq, Reg::R2, 0xffff_0000, end);
        asm.store(Size::W, Reg::Fp, -8, Reg::R2);
        asm.bind(end);
        asm.exit();
        let insns = asm.finish();
        assert_eq!(
            insns,
            [
                Insn {
                    code: 0xb7,
                    regs: 0x00,
                    off: 0,
                    imm: 1
                },
                Insn {
                    code: 0x61,
                    regs: 0x12,
                    off: 64,
                    imm: 0
                },
                Insn {
                    code: 0x16,
                    regs: 0x02,
                    off: 1,
                    imm: 0xffff_0000u32 as i32
                },
                Insn {
                    code: 0x63,
                    regs: 0x2a,
                    off: -8,
                    imm: 0
                },
                Insn {
                    code: 0x95,
                    regs: 0x00,
                    off: 0,
                    imm: 0
                },
            ]
        );
    }

    #[test]
    fn map_load_takes_two_slots() {
        let mut asm = Asm::default();
        asm.load_map(Reg::R1, 7);
        let insns = asm.finish();
        assert_eq!(
            insns[0],
            Insn {
                code: 0x18,
                regs: 0x11,
                off: 0,
                imm: 7
            }
        );
        assert_eq!(
            insns[1],
            Insn {
                code: 0,
                regs: 0,
                off: 0,
                imm: 0
            }
        );
    }
}
