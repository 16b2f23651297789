//! Giving freed memory back to the operating system after a burst of request bodies.
//!
//! glibc's allocator keeps what a thread freed in that thread's arena for reuse, and raises its
//! `mmap` threshold after a large block is freed, so the buffers of many bodies received at once
//! (an attack of slow bodies, issue 20) stay in the process's resident set long after they were
//! freed: measured, about 60 MB of 90 MB stayed after 350 slow bodies ended. `malloc_trim(0)`
//! hands the free pages of every arena back. [`return_free_memory`] is called by the body
//! budget's watcher (`http::body::return_memory_after_bursts`) once a burst is over, at most
//! every few seconds, never per request. Elsewhere than glibc it does nothing.

/// Returns the allocator's free pages to the operating system (glibc's `malloc_trim(0)`);
/// `true` when some memory was released.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn return_free_memory() -> bool {
    unsafe extern "C" {
        /// glibc, `<malloc.h>`: thread-safe (it takes each arena's lock in turn), no pointer
        /// arguments; returns 1 when memory was released.
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: a plain call into glibc with an integer argument; it touches only the
    // allocator's own state, under its locks.
    unsafe { malloc_trim(0) == 1 }
}

/// Does nothing: other allocators return memory on their own terms.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_free_memory() -> bool {
    false
}
