//! Where the daemon's control socket lives.

use std::path::{Path, PathBuf};

/// Environment variable that overrides the default socket path for all three programs.
pub const SOCKET_ENV: &str = "ASYNCMD_SOCKET";

/// The default socket path: `/run/asyncmd/asyncmdd.sock` for root, else under
/// `$XDG_RUNTIME_DIR/asyncmd/` (or `/tmp/asyncmd-UID/` when that is unset).
pub fn default_socket_path() -> PathBuf {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return PathBuf::from("/run/asyncmd/asyncmdd.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => Path::new(&dir).join("asyncmd/asyncmdd.sock"),
        _ => PathBuf::from(format!("/tmp/asyncmd-{uid}/asyncmdd.sock")),
    }
}

/// The socket to use: an explicit `--socket`, else `ASYNCMD_SOCKET`, else the default.
pub fn socket_path(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    match std::env::var_os(SOCKET_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => default_socket_path(),
    }
}
