//! The process's memory (glibc malloc settings): the idle daemon's, and an export's.
//!
//! The idle daemon's memory. A refresh of a table with 1,000+ partitions allocates tens of
//! MiB for a moment (the catalog row, the snapshot, the gauges, the status document).
//! glibc spreads allocations over one arena per thread and keeps what is freed, so the
//! idle RSS would stay at the sum of those peaks (≈ 50 MiB at 1,200 partitions, against a
//! 20 MiB budget). With one arena, handed back after each refresh and each maintenance
//! run, it stays near 14 MiB (12–20 MiB at 30,000 partitions). Large blocks (a catalog
//! reply, a `/metrics` text of megabytes) are mapped and unmapped on their own rather than
//! left in the heap until the next trim. Other allocators (musl) need none of this.

/// Blocks from this size up are mapped on their own and returned to the system when freed.
/// glibc's default starts here too but raises itself to the largest block freed (up to
/// 32 MiB), after which a `/metrics` render of 4.7 MiB stays in the heap; setting it fixes it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// One malloc arena for the process, and large blocks mapped on their own. Call before any
/// thread starts: threads that already allocated keep their arenas.
pub fn use_one_allocator_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; both are valid at any time.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// While an export or a restore runs, blocks up to 6 MiB (its batches and pages) come
/// from the heap and are reused: mapped on their own, each one was
/// mapped, faulted in page by page and unmapped again, batch after batch (bench/export:
/// 65 s instead of 40 s for a million rows). The guard puts the daemon's setting back
/// and hands the heap back to the system when the work is done.
pub struct BulkWork(());

/// Above a record batch (~3.2 MiB at 1,024 GA4 rows): batches and pages are reused from
/// the heap; row groups and upload parts (16 and 8 MiB) stay mapped on their own, so the
/// heap holds no more than a few batches.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const BULK_MMAP_THRESHOLD: libc::c_int = 6 << 20;

impl BulkWork {
    pub fn begin() -> BulkWork {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only sets an allocator parameter; valid at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, BULK_MMAP_THRESHOLD);
        }
        BulkWork(())
    }
}

impl Drop for BulkWork {
    fn drop(&mut self) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: as above; malloc_trim only releases free memory.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::malloc_trim(0);
        }
    }
}

/// Returns the heap freed since the last call to the system.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator; it touches no live
    // allocation and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
