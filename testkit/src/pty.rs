//! Running a command on a pseudo-terminal, for tests of what a binary
//! draws on a terminal (bars, colour) as opposed to a pipe.

use std::io::Read as _;
use std::process::{Command, Stdio};

/// Runs `cmd` with stdin closed and stdout and stderr on a new
/// pseudo-terminal of `size` (columns, rows; `None`: the kernel's 0x0);
/// everything it wrote, and its exit code (`None` when a signal ended it).
pub fn on_a_terminal(mut cmd: Command, size: Option<(u16, u16)>) -> (String, Option<i32>) {
    let size = size.map(|(ws_col, ws_row)| nix::pty::Winsize {
        ws_row,
        ws_col,
        ws_xpixel: 0,
        ws_ypixel: 0,
    });
    let pty = nix::pty::openpty(size.as_ref(), None).expect("openpty");
    {
        let out = pty.slave.try_clone().expect("dup");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(pty.slave));
    }
    let mut child = cmd.spawn().expect("spawn");
    // Our copies of the slave side go with `cmd`: reading ends (EIO) when
    // the child exits.
    drop(cmd);
    let mut master = std::fs::File::from(pty.master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => break,
            Err(e) => panic!("reading the terminal: {e}"),
        }
    }
    let status = child.wait().expect("wait");
    (String::from_utf8_lossy(&out).into_owned(), status.code())
}
