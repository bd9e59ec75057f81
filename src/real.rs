//! The real libc functions behind our hooks, found with `dlsym(RTLD_NEXT)`.
//!
//! Each is one atomic pointer: resolved by our constructor, or by the first
//! hook that runs before it (another library's constructor). The lookup
//! takes no lock of ours, so a signal handler that interrupts a lookup, or
//! a child forked in the middle of one, never waits on it: racing `dlsym`
//! calls find the same address and store it twice, harmlessly.
//!
//! When `RTLD_NEXT` finds nothing (the library preloaded after libc and
//! reached through `dlopen`/`dlsym`), the global scope is asked instead,
//! as long as it does not answer with our own hook; if that fails too, the
//! hook reports `ENOSYS` instead of aborting the program.

use std::ffi::{c_void, CStr};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Stored when nothing was found, so that we ask `dlsym` only once.
const MISSING: *mut c_void = 1 as *mut c_void;

/// The real function `F` (an `unsafe extern "C-unwind" fn` type, see
/// `hooks`) named `name`.
pub struct Real<F> {
    address: AtomicPtr<c_void>,
    name: &'static CStr,
    _function: PhantomData<F>,
}

impl<F: Copy> Real<F> {
    pub const fn new(name: &'static CStr) -> Self {
        Real {
            address: AtomicPtr::new(std::ptr::null_mut()),
            name,
            _function: PhantomData,
        }
    }

    /// The real function, or `None` when this process has none.
    #[inline]
    pub fn get(&self) -> Option<F> {
        let mut address = self.address.load(Ordering::Acquire);
        if address.is_null() {
            address = self.resolve();
        }
        if address == MISSING {
            return None;
        }
        // Checked when compiled, never at run time (no panic in a hook).
        const { assert!(std::mem::size_of::<F>() == std::mem::size_of::<*mut c_void>()) };
        // SAFETY: F is the C type of the function dlsym found by this name.
        Some(unsafe { std::mem::transmute_copy::<*mut c_void, F>(&address) })
    }

    #[cold]
    fn resolve(&self) -> *mut c_void {
        let _errno = crate::sockopt::ErrnoGuard::save();
        // Tests only: a wide window in the middle of a lookup, in which a
        // lock-based lookup would deadlock a signal handler or a child
        // forked by another thread (tests/reliability.rs).
        #[cfg(feature = "slow-resolve")]
        std::thread::sleep(std::time::Duration::from_millis(20));
        // SAFETY: name is NUL-terminated; dlsym has no other precondition.
        let mut found = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr()) };
        if found.is_null() {
            // Rare, and the only answer that can be our own hook: dladdr
            // costs tens of thousands of instructions, so only here.
            // SAFETY: as above.
            found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, self.name.as_ptr()) };
            if found.is_null() || in_this_library(found) {
                found = MISSING;
            }
        }
        self.address.store(found, Ordering::Release);
        found
    }
}

/// Whether `address` lies in this library (our own hook, which the global
/// scope may answer with). Compared by object, through `dladdr`: taking our
/// hook's address by its name could itself be interposed.
fn in_this_library(address: *mut c_void) -> bool {
    static MARKER: u8 = 0;
    let object_of = |address: *const c_void| {
        let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
        // SAFETY: dladdr fills info when it returns non-zero.
        let found = unsafe { libc::dladdr(address, info.as_mut_ptr()) } != 0;
        // SAFETY: zero-initialised and possibly filled.
        found.then(|| unsafe { info.assume_init() }.dli_fbase)
    };
    let ours = object_of(std::ptr::addr_of!(MARKER).cast());
    ours.is_some() && object_of(address) == ours
}

/// The value a hook returns, with `errno` set to `ENOSYS`, when the real
/// function is missing.
pub fn missing<T>(value: T) -> T {
    // SAFETY: this thread's errno.
    unsafe { *libc::__errno_location() = libc::ENOSYS };
    value
}
