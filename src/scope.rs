//! Whether this process is one `KEEPALIVE_PROGRAMS` lists: its two names
//! (see `programs`), read once at load with plain system calls.

use keepalive_core::programs::Programs;
use std::ffi::CStr;

/// True if `programs` lists this process by its executable file or by the
/// path it was started by.
pub fn this_process_is_listed(programs: &Programs) -> bool {
    let mut buffer = [0u8; 4096];
    // SAFETY: the path is NUL-terminated and the buffer writable for its length.
    let len = unsafe {
        libc::readlink(
            c"/proc/self/exe".as_ptr(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
        )
    };
    let exe: &[u8] = if len > 0 {
        &buffer[..len as usize]
    } else {
        b""
    };
    // SAFETY: getauxval has no preconditions; AT_EXECFN, when present, is a
    // NUL-terminated string the kernel put on the stack for the process's life.
    let execfn = unsafe {
        let pointer = libc::getauxval(libc::AT_EXECFN) as *const libc::c_char;
        if pointer.is_null() {
            &[][..]
        } else {
            CStr::from_ptr(pointer).to_bytes()
        }
    };
    programs.lists(&[exe, execfn])
}
