//! The idle daemon's memory. A refresh of a table with 1,000+ partitions allocates tens of
//! MiB for a moment (the catalog row, the snapshot, the gauges, the status document).
//! glibc spreads allocations over one arena per thread and keeps what is freed, so the
//! idle RSS would stay at the sum of those peaks (≈ 50 MiB at 1,200 partitions, against a
//! 20 MiB budget). With one arena, handed back after each refresh, it stays near 14 MiB.
//! Other allocators (musl) need neither.

/// One malloc arena for the process. Call before any thread starts: threads that already
/// allocated keep their arenas.
pub fn use_one_allocator_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX is valid at any time.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Returns the heap freed since the last call to the system.
pub(super) fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator; it touches no live
    // allocation and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
