//! Allocator policy for a process that streams URBs.
//!
//! Every URB's data lives in a `Bytes` that is freed when the URB completes, so buffers of
//! 64 KiB to 16 MiB are allocated and freed continuously. With glibc's defaults (a 128 KiB
//! trim threshold and a moving mmap threshold) the freed memory goes back to the kernel at
//! once and the next buffer faults it in again page by page: `usbfn bench` measured about 45%
//! of the bytes moved over USB/IP landing on freshly faulted pages, the largest single cost on
//! the data path (docs/benchmarks.md). Fixed thresholds above the largest URB keep that memory
//! in the heap for reuse; at most [`TRIM_THRESHOLD`] of free heap is kept.

/// Allocations this large or larger are mmapped (above the 16 MiB URB limit).
const MMAP_THRESHOLD: i32 = 32 * 1024 * 1024;
/// Free memory at the top of the heap kept before it is returned to the kernel.
const TRIM_THRESHOLD: i32 = 64 * 1024 * 1024;

/// Apply the policy, unless the user set glibc's malloc tunables themselves.
pub(crate) fn tune_for_streaming() {
    if std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("malloc")) {
        return;
    }
    set_thresholds();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // mallopt, with its SAFETY comment
fn set_thresholds() {
    // SAFETY: mallopt only changes allocator parameters; it is called first thing in main,
    // before any other thread exists, with parameters and values glibc documents.
    let ok = unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    };
    if !ok {
        eprintln!("usbfn: could not set malloc thresholds; running with glibc's defaults");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
#[allow(unsafe_code)] // mallopt, with its SAFETY comment
fn set_thresholds() {}
