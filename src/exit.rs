//! bosun's exit codes. Every expected failure maps to one of these; `docs/exit-codes.md` lists them for users.

/// The command did what was asked.
pub const SUCCESS: i32 = 0;
/// Something bosun did not expect (a defect, or an environment it cannot describe better).
pub const UNEXPECTED: i32 = 1;
/// The command line was wrong (clap's own code for usage errors).
pub const USAGE: i32 = 2;
/// The configuration file, or a value derived from it, is invalid. Nothing was changed.
pub const INVALID_CONFIG: i32 = 3;
/// Preflight checks, or a check before the first change, failed. Nothing was changed.
pub const PREFLIGHT_FAILED: i32 = 4;
/// A phase failed after the host had been changed. Running the same command again continues from there.
pub const FAILED_AFTER_CHANGE: i32 = 5;
/// A remote host (SSH, API server, etcd) could not be reached.
pub const REMOTE_UNREACHABLE: i32 = 6;
/// A check command found what it was asked to look for (e.g. `certs check-expiration --fail-within`).
pub const CHECK_FAILED: i32 = 7;
/// Another bosun process holds the lock on this host.
pub const LOCKED: i32 = 8;

/// Every code with its name and meaning, for `docs/exit-codes.md` and its test.
pub const TABLE: [(i32, &str, &str); 9] = [
    (SUCCESS, "success", "the command did what was asked"),
    (UNEXPECTED, "unexpected", "an error bosun did not expect"),
    (USAGE, "usage", "the command line was wrong"),
    (
        INVALID_CONFIG,
        "invalid-config",
        "the configuration is invalid; nothing was changed",
    ),
    (
        PREFLIGHT_FAILED,
        "preflight-failed",
        "preflight checks failed; nothing was changed",
    ),
    (
        FAILED_AFTER_CHANGE,
        "failed-after-change",
        "a phase failed after the host was changed; run the command again to continue",
    ),
    (
        REMOTE_UNREACHABLE,
        "remote-unreachable",
        "a remote host could not be reached",
    ),
    (
        CHECK_FAILED,
        "check-failed",
        "a check found what it was asked to look for",
    ),
    (
        LOCKED,
        "locked",
        "another bosun process is working on this host",
    ),
];
