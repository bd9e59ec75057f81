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

    fn v4_bytes(octets: [u8; 4], port: u16) -> Vec<u8> {
        let mut bytes = vec![0u8; 16];
        bytes[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        bytes[2..4].copy_from_slice(&port.to_be_bytes());
        bytes[4..8].copy_from_slice(&octets);
        bytes
    }

    fn v6_bytes(text: &str, port: u16) -> Vec<u8> {
        let mut bytes = vec![0u8; 28];
        bytes[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        bytes[2..4].copy_from_slice(&port.to_be_bytes());
        bytes[8..24].copy_from_slice(&text.parse::<std::net::Ipv6Addr>().unwrap().octets());
        bytes
    }

    #[test]
    fn raw_pointers() {
        let bytes = v4_bytes([10, 0, 0, 1], 22);
        let ptr = bytes.as_ptr().cast::<sockaddr>();
        // SAFETY: bytes is 16 bytes long.
        unsafe {
            assert!(read(std::ptr::null(), 16).is_none());
            assert_eq!(read(ptr, 16).unwrap().port, 22);
            assert!(read(ptr, 8).is_none());
            // A longer length than any sockaddr reads no further than one.
            let long = v6_bytes("::1", 9);
            assert_eq!(read(long.as_ptr().cast(), 1000).unwrap().port, 9);
        }
    }
}
