//! What we know about each file descriptor (a `fd_state::Record` in one
//! atomic word), so that `connect()` and `accept()` cost no system call on
//! sockets we have already seen, and the program's choices are remembered.
//!
//! Two levels, covering every descriptor a process can have (up to 2^31):
//! pages of 65,536 words. Page 0 lives in .bss, so the first 65,536 numbers
//! need no allocation and only the pages of numbers actually used become
//! resident. Higher pages are mapped with `mmap` the first time a number in
//! them is written (async-signal-safe, no lock: a thread that loses the race
//! unmaps its copy). No lock, no malloc, safe from signal handlers.
//!
//! A number whose page cannot be mapped cannot be followed: `load` answers
//! `None` and the actions leave that socket alone.

use keepalive_core::fd_state::Record;
use keepalive_core::lifecycle;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

#[cfg(not(feature = "small-fd-pages"))]
const PAGE_BITS: u32 = 16;
/// Tests only: pages of 256, so that a machine whose hard RLIMIT_NOFILE is
/// low still reaches the mapped pages (tests/reliability.rs).
#[cfg(feature = "small-fd-pages")]
const PAGE_BITS: u32 = 8;
const PAGE_LEN: usize = 1 << PAGE_BITS;
const PAGES: usize = 1 << (31 - PAGE_BITS);

type Page = [AtomicU32; PAGE_LEN];

static FIRST_PAGE: Page = [const { AtomicU32::new(0) }; PAGE_LEN];
/// Pages 1.. (page 0 is `FIRST_PAGE`); null until first written.
static PAGES_ABOVE: [AtomicPtr<AtomicU32>; PAGES] = [const { AtomicPtr::new(null_mut()) }; PAGES];

fn split(fd: i32) -> Option<(usize, usize)> {
    let fd = usize::try_from(fd).ok()?;
    Some((fd >> PAGE_BITS, fd & (PAGE_LEN - 1)))
}

/// The word for `fd`, mapping its page if `create`. No panic path: the
/// hooks' fast paths call it outside `catch_unwind`.
#[inline(always)]
fn word(fd: i32, create: bool) -> Option<&'static AtomicU32> {
    let (page, index) = split(fd)?;
    if page == 0 {
        return FIRST_PAGE.get(index);
    }
    let slot = PAGES_ABOVE.get(page)?;
    let mut base = slot.load(Ordering::Acquire);
    if base.is_null() {
        if !create {
            return None;
        }
        base = map_page(slot)?;
    }
    // SAFETY: base points to PAGE_LEN words, mapped and never unmapped.
    Some(unsafe { &*base.add(index) })
}

#[cold]
fn map_page(slot: &AtomicPtr<AtomicU32>) -> Option<*mut AtomicU32> {
    let _errno = crate::sockopt::ErrnoGuard::save();
    let size = std::mem::size_of::<Page>();
    // SAFETY: a fresh anonymous mapping; zero-filled, i.e. all Unknown.
    let mapped = unsafe {
        libc::mmap(
            null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if mapped == libc::MAP_FAILED {
        return None;
    }
    let mapped = mapped.cast::<AtomicU32>();
    match slot.compare_exchange(null_mut(), mapped, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(mapped),
        Err(winner) => {
            // SAFETY: our own mapping, never published.
            unsafe { libc::munmap(mapped.cast(), size) };
            Some(winner)
        }
    }
}

/// The record of `fd`: `Unknown` for a number never written, `None` for a
/// number that cannot be followed (negative, or its page cannot be mapped).
#[inline(always)]
pub fn load(fd: i32) -> Option<Record> {
    let (page, _) = split(fd)?;
    match word(fd, false) {
        Some(word) => Some(Record::decode(word.load(Ordering::Acquire))),
        None if page < PAGES => Some(Record::UNKNOWN),
        None => None,
    }
}

/// Records `record` for `fd`; false if `fd` cannot be followed.
#[inline(always)]
pub fn store(fd: i32, record: Record) -> bool {
    match word(fd, true) {
        Some(word) => {
            word.store(record.encode(), Ordering::Release);
            true
        }
        None => false,
    }
}

/// Replaces `current` by `new` only if `fd` still holds exactly `current`
/// (no close, no reuse, no choice of the program in between).
#[inline]
pub fn replace(fd: i32, current: Record, new: Record) -> bool {
    word(fd, true).is_some_and(|word| {
        word.compare_exchange(
            current.encode(),
            new.encode(),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
    })
}

/// Forgets `fd` (a close): a new generation, nothing known. A number never
/// written, or in a page never mapped, is left as it is.
#[inline(always)]
pub fn forget(fd: i32) {
    if let Some(word) = word(fd, false) {
        let current = word.load(Ordering::Acquire);
        if current != 0 {
            word.store(
                lifecycle::close(Record::decode(current)).encode(),
                Ordering::Release,
            );
        }
    }
}

/// The first word of page `page`, if it is mapped.
fn mapped_page(page: usize) -> Option<*const AtomicU32> {
    if page == 0 {
        return Some(FIRST_PAGE.as_ptr());
    }
    let mapped = PAGES_ABOVE.get(page)?.load(Ordering::Acquire);
    (!mapped.is_null()).then_some(mapped.cast_const())
}

/// Forgets every number from `first` to `last` (inclusive) that we know
/// anything about: only mapped pages are visited.
pub fn forget_range(first: u32, last: u32) {
    let first = first.min(i32::MAX as u32) as usize;
    let last = last.min(i32::MAX as u32) as usize;
    if first > last {
        return;
    }
    for page in (first >> PAGE_BITS)..=(last >> PAGE_BITS) {
        let Some(base) = mapped_page(page) else {
            continue;
        };
        let low = if page == first >> PAGE_BITS {
            first & (PAGE_LEN - 1)
        } else {
            0
        };
        let high = if page == last >> PAGE_BITS {
            last & (PAGE_LEN - 1)
        } else {
            PAGE_LEN - 1
        };
        for index in low..=high {
            // SAFETY: index < PAGE_LEN words of a live page.
            let word = unsafe { &*base.add(index) };
            let current = word.load(Ordering::Acquire);
            if current != 0 {
                let closed = lifecycle::close(Record::decode(current));
                word.store(closed.encode(), Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keepalive_core::fd_state::{Choices, Kind};

    fn pending() -> Record {
        Record::UNKNOWN.next(Kind::Pending, Choices::default())
    }

    // One test: the table is one static, shared by the test threads.
    #[test]
    fn every_number_is_followed_and_ranges_forget_what_they_cover() {
        for fd in [0, 12345, 65535, 65536, 1 << 20, (1 << 20) + 1, i32::MAX] {
            assert_eq!(load(fd), Some(Record::UNKNOWN), "{fd}");
            assert!(store(fd, pending()), "{fd}");
            assert_eq!(load(fd), Some(pending()), "{fd}");
            assert!(replace(fd, pending(), pending().with_kind(Kind::Decided)));
            assert!(!replace(fd, pending(), Record::UNKNOWN), "{fd}");
            forget_range(fd as u32, fd as u32);
            assert_eq!(load(fd).unwrap().kind, Kind::Unknown, "{fd}");
            assert_ne!(load(fd).unwrap().generation, pending().generation);
        }
        assert_eq!(load(-1), None);
        assert!(!store(-1, pending()));

        for fd in [200, 201, 70_000, 70_001, i32::MAX] {
            store(fd, pending());
        }
        forget_range(201, 70_000);
        assert_eq!(load(200), Some(pending()));
        assert_eq!(load(201).unwrap().kind, Kind::Unknown);
        assert_eq!(load(70_000).unwrap().kind, Kind::Unknown);
        assert_eq!(load(70_001), Some(pending()));
        forget_range(0, u32::MAX);
        assert_eq!(load(70_001).unwrap().kind, Kind::Unknown);
        assert_eq!(load(i32::MAX).unwrap().kind, Kind::Unknown);
    }
}
