//! Thin wrappers over the socket system calls and errno. Our own
//! `setsockopt` calls go through the real libc function handed in by the
//! hooks, never through our exported `setsockopt` (which would mistake them
//! for the program's own choice).

use keepalive_core::options::SockOpt;
use libc::{c_int, c_void, socklen_t};
use std::mem::size_of;

/// The real `setsockopt` (`"C-unwind"`, as every real function: see `hooks`).
pub type SetsockoptFn =
    unsafe extern "C-unwind" fn(c_int, c_int, c_int, *const c_void, socklen_t) -> c_int;

pub fn errno() -> i32 {
    // SAFETY: __errno_location always returns this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Restores errno when dropped: whatever we do, the program sees the errno
/// its own call produced. Holds this thread's errno location, so that
/// putting it back is one store (the guard never leaves its thread).
pub struct ErrnoGuard {
    location: *mut c_int,
    value: c_int,
}

impl ErrnoGuard {
    #[inline]
    pub fn save() -> Self {
        // SAFETY: __errno_location always returns this thread's errno.
        let location = unsafe { libc::__errno_location() };
        // SAFETY: it points to this thread's errno, alive as long as it.
        let value = unsafe { *location };
        ErrnoGuard { location, value }
    }
}

impl Drop for ErrnoGuard {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this thread's errno (see `save`).
        unsafe { *self.location = self.value }
    }
}

/// Sets one option; returns the errno of a failure.
pub fn set(setsockopt: SetsockoptFn, fd: i32, option: &SockOpt) -> Result<(), i32> {
    let value: c_int = option.value;
    // SAFETY: value is a live c_int and its size is passed.
    let rc = unsafe {
        setsockopt(
            fd,
            option.level,
            option.name,
            (&value as *const c_int).cast(),
            size_of::<c_int>() as socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// Reads an int option; `None` if the call fails (not a socket, bad fd...).
pub fn get_int(fd: i32, level: i32, name: i32) -> Option<i32> {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: value and len are live and len holds value's size.
    let rc =
        unsafe { libc::getsockopt(fd, level, name, (&mut value as *mut c_int).cast(), &mut len) };
    (rc == 0).then_some(value)
}

/// The int at `value`, as the kernel read it for an option of `length`
/// bytes: `None` when shorter than an int or null.
///
/// # Safety
/// `value` must be null or point to `length` readable bytes (call it after
/// the kernel accepted them).
pub unsafe fn read_int_value(value: *const c_void, length: socklen_t) -> Option<i32> {
    if value.is_null() || (length as usize) < size_of::<c_int>() {
        return None;
    }
    // SAFETY: the caller promises `length` >= 4 readable bytes.
    Some(unsafe { value.cast::<c_int>().read_unaligned() })
}
