//! Reading a `struct sockaddr` from the program's memory, and asking the
//! kernel for one end of a connection; the bytes are parsed by the core
//! (`keepalive_core::endpoint`).

use keepalive_core::endpoint::{parse, Endpoint, MAX_READ};
use libc::{sockaddr, socklen_t};
use std::mem::size_of;

/// Reads the sockaddr at `address`, `length` bytes long, as the kernel
/// would: `None` for a null pointer or a short length.
///
/// # Safety
/// `address` must be null or point to `length` readable bytes: call it only
/// after the kernel has read them itself (connect() did not fail EFAULT).
pub unsafe fn read(address: *const sockaddr, length: socklen_t) -> Option<Endpoint> {
    if address.is_null() {
        return None;
    }
    let length = (length as usize).min(MAX_READ);
    // SAFETY: the caller promises `length` readable bytes.
    parse(unsafe { std::slice::from_raw_parts(address.cast::<u8>(), length) })
}

/// Asks the kernel for one end of a connected socket (`getpeername` or
/// `getsockname`): the one system call needed when nobody told us.
pub fn query(
    fd: i32,
    call: unsafe extern "C" fn(i32, *mut sockaddr, *mut socklen_t) -> i32,
) -> Option<Endpoint> {
    let mut storage = std::mem::MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut length = size_of::<libc::sockaddr_storage>() as socklen_t;
    // SAFETY: storage is large enough for any address and length says so.
    let rc = unsafe { call(fd, storage.as_mut_ptr().cast(), &mut length) };
    if rc != 0 {
        return None;
    }
    // SAFETY: zero-initialised, partly written by the kernel.
    let storage = unsafe { storage.assume_init() };
    let length = (length as usize).min(size_of::<libc::sockaddr_storage>());
    // SAFETY: a sockaddr_storage is plain bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&storage as *const libc::sockaddr_storage).cast::<u8>(),
            length,
        )
    };
    parse(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real C structs here (the byte layouts are the core's tests): what a
    // program passes to connect().
    #[test]
    fn raw_pointers() {
        // SAFETY: all-zero is a valid sockaddr_in and sockaddr_in6.
        let mut v4: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        v4.sin_family = libc::AF_INET as libc::sa_family_t;
        v4.sin_port = 22u16.to_be();
        v4.sin_addr.s_addr = u32::from_ne_bytes([10, 0, 0, 1]);
        let v4_len = size_of::<libc::sockaddr_in>() as socklen_t;
        let ptr = (&v4 as *const libc::sockaddr_in).cast::<sockaddr>();
        // SAFETY: all-zero is a valid sockaddr_in6.
        let mut v6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        v6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        v6.sin6_port = 9u16.to_be();
        v6.sin6_addr.s6_addr[15] = 1;
        // SAFETY: each pointer is null or points to its whole struct.
        unsafe {
            assert!(read(std::ptr::null(), v4_len).is_none());
            assert_eq!(read(ptr, v4_len).unwrap().port, 22);
            assert!(read(ptr, 8).is_none());
            // A longer length than any sockaddr reads no further than one.
            let long = read((&v6 as *const libc::sockaddr_in6).cast(), 1000).unwrap();
            assert_eq!((long.address.to_string().as_str(), long.port), ("::1", 9));
        }
    }
}
