//! `_dl_find_object` for the unwinder linked into the library (x86_64).
//!
//! build.rs links gcc's unwinder statically (libgcc_eh.a) instead of
//! needing libgcc_s.so.1: one shared object fewer to load in every process.
//! The unwinder runs only when a panic of ours is caught (`actions::shielded`).
//! To find the unwind tables of the code a frame belongs to, gcc 12 and
//! later call glibc's `_dl_find_object`, which exists only since glibc 2.35:
//! importing it would raise the library's glibc floor from 2.34 (RHEL 9) to
//! 2.35. So the library brings its own, found by the linker before libc's.
//!
//! It is HIDDEN: only the unwinder inside this library calls it. Exported,
//! it would replace glibc's `_dl_find_object` for the whole process (every
//! C++ exception and thread cancellation of the program).
//!
//! It answers what the unwinder reads on x86_64 (`dlfo_eh_frame`), from
//! `dl_iterate_phdr`, which is what gcc's unwinder itself used before
//! `_dl_find_object` existed: slower (no cache), but only a bug of ours
//! ever gets here.

use libc::{c_int, c_void, dl_phdr_info, size_t, PT_GNU_EH_FRAME, PT_LOAD};

// `.hidden`: defined for the linker (libgcc_eh.a's reference binds here,
// not to libc), never in the dynamic symbol table. A Rust #[no_mangle]
// function would be exported by the cdylib, so the symbol is a one-jump
// assembler stub instead.
core::arch::global_asm!(
    ".globl _dl_find_object",
    ".hidden _dl_find_object",
    ".type _dl_find_object,@function",
    "_dl_find_object:",
    "    jmp {find}",
    ".size _dl_find_object,.-_dl_find_object",
    find = sym find_object,
);

/// glibc's `struct dl_find_object` on x86_64 (dlfcn.h, glibc 2.35+). The
/// caller owns it; only the named fields are written.
#[repr(C)]
struct DlFindObject {
    flags: u64,
    map_start: *mut c_void,
    map_end: *mut c_void,
    link_map: *mut c_void,
    eh_frame: *mut c_void,
    reserved: [*mut c_void; 7],
}

/// What the search found, or is still looking for (`pc`).
struct Search {
    pc: usize,
    map_start: usize,
    map_end: usize,
    eh_frame: usize,
    found: bool,
}

/// `_dl_find_object(pc, result)`: 0 and `result` filled if a loaded object
/// maps `pc`, -1 otherwise. No link map: the unwinder does not read it.
extern "C" fn find_object(pc: *mut c_void, result: *mut DlFindObject) -> c_int {
    let mut search = Search {
        pc: pc as usize,
        map_start: 0,
        map_end: 0,
        eh_frame: 0,
        found: false,
    };
    // SAFETY: the callback matches dl_iterate_phdr's type, and `search`
    // outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut search as *mut Search).cast()) };
    if !search.found || result.is_null() {
        return -1;
    }
    // SAFETY: the caller passes its own struct dl_find_object; checked
    // non-null above.
    unsafe {
        (*result).flags = 0;
        (*result).map_start = search.map_start as *mut c_void;
        (*result).map_end = search.map_end as *mut c_void;
        (*result).link_map = std::ptr::null_mut();
        (*result).eh_frame = search.eh_frame as *mut c_void;
    }
    0
}

/// One loaded object: if one of its PT_LOAD segments holds `pc`, record its
/// whole mapped range and its PT_GNU_EH_FRAME (0 if none), and stop (1).
unsafe extern "C" fn visit(info: *mut dl_phdr_info, _size: size_t, data: *mut c_void) -> c_int {
    // SAFETY: dl_iterate_phdr passes a valid info and our `data` back.
    let (info, search) = unsafe { (&*info, &mut *data.cast::<Search>()) };
    if info.dlpi_phdr.is_null() {
        return 0;
    }
    // SAFETY: dlpi_phdr points to dlpi_phnum program headers.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
    let base = info.dlpi_addr as usize;
    let (mut start, mut end, mut eh_frame, mut holds_pc) = (usize::MAX, 0, 0, false);
    for header in headers {
        let address = base.wrapping_add(header.p_vaddr as usize);
        match header.p_type {
            PT_LOAD => {
                let segment_end = address.wrapping_add(header.p_memsz as usize);
                holds_pc |= (address..segment_end).contains(&search.pc);
                start = start.min(address);
                end = end.max(segment_end);
            }
            PT_GNU_EH_FRAME => eh_frame = address,
            _ => {}
        }
    }
    if !holds_pc {
        return 0;
    }
    *search = Search {
        pc: search.pc,
        map_start: start,
        map_end: end,
        eh_frame,
        found: true,
    };
    1
}
