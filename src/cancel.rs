//! The program's `pthread_cancel` never lands inside our own work.
//!
//! glibc acts on a deferred cancellation at the next cancellation point the
//! thread reaches (write, open, read, close...), by a forced unwind through
//! its frames. Ours would be among them, under `catch_unwind`, which cannot
//! let that unwind through: the process aborts ("FATAL: exception not
//! rethrown"). And a call like `socket()`, which is no cancellation point,
//! must not become one because we wrote a debug line inside it. So the
//! system calls of our own that are cancellation points (debug and
//! diagnostic writes, /proc reads, the configuration's load) run with
//! cancellation disabled; a pending request is acted on at the program's
//! next cancellation point, as without us. The hot path makes none of
//! these calls and never comes here.

use libc::c_int;

extern "C" {
    // glibc's; the libc crate has no binding for it on Linux.
    fn pthread_setcancelstate(state: c_int, old_state: *mut c_int) -> c_int;
}

/// glibc's value (`<pthread.h>`).
const PTHREAD_CANCEL_DISABLE: c_int = 1;

/// Puts back the thread's cancellation state, even if `work` panics.
struct Restore(c_int);

impl Drop for Restore {
    fn drop(&mut self) {
        // SAFETY: a state glibc gave us; no output pointer. Only atomic
        // operations on the thread's own descriptor: async-signal-safe in
        // glibc, and no cancellation point (a pending request stays pending).
        unsafe { pthread_setcancelstate(self.0, std::ptr::null_mut()) };
    }
}

/// Runs `work` with cancellation disabled in this thread.
pub fn held_off<T>(work: impl FnOnce() -> T) -> T {
    let mut previous = PTHREAD_CANCEL_DISABLE;
    // SAFETY: `previous` is a valid int to write. Cannot fail with a valid
    // state; errno is not touched.
    unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut previous) };
    let _restore = Restore(previous);
    work()
}
