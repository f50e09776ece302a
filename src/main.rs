fn main() -> std::process::ExitCode {
    bound_the_allocator();
    jans_exporter::cli::main()
}

/// glibc's malloc keeps freed memory of large, short-lived buffers (a snapshot being
/// read, a sketch being encoded) and grows its mmap threshold after each one is freed,
/// so a sidecar's RSS would settle at its worst moment. A fixed 128 KiB threshold
/// returns every large buffer to the kernel when freed, and two arenas are plenty for
/// a store thread and a small runtime.
fn bound_the_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
