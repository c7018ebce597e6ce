//! A disk that refuses writes, for tests that run in their own process: `RLIMIT_FSIZE` makes
//! every write past a size fail with `EFBIG`, a real error from the kernel.

/// Limits the size of every file this process writes to `bytes` (`libc::RLIM_INFINITY`
/// lifts the limit again).
pub fn limit_file_size(bytes: libc::rlim_t) {
    // SAFETY: plain libc calls with valid arguments; ignoring SIGXFSZ makes an oversized
    // write fail with EFBIG instead of killing the process.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}
