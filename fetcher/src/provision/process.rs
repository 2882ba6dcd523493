//! Runs a loader installer headless: `java -jar installer.jar ARGS` in the
//! staging directory, output to a log, killed when it runs too long.

use std::path::Path;
use std::process::Stdio;

use atlas_proto::IoError;

use super::error::ProvisionError;
use super::options::ProvisionOptions;

/// Most of the installer's log quoted in an error.
const TAIL_BYTES: u64 = 4096;

/// Runs `jar` with `args` under `o.java` in `work` (which receives its log).
pub(super) async fn run_installer(
    o: &ProvisionOptions,
    work: &Path,
    jar: &Path,
    args: &[String],
) -> Result<(), ProvisionError> {
    let loader = o.loader.as_str();
    let log = work.join("installer.log");
    let file = std::fs::File::create(&log).map_err(IoError::at("creating", &log))?;
    let err_file = file.try_clone().map_err(IoError::at("opening", &log))?;
    let command = format!("{} -jar {} {}", o.java.display(), jar.display(), args.join(" "));
    tracing::info!(%command, "running the {loader} installer");
    let mut child = tokio::process::Command::new(&o.java)
        .arg("-jar")
        .arg(jar)
        .args(args)
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err_file))
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ProvisionError::JavaMissing {
            java: o.java.clone(),
            reason: source,
        })?;
    let status = match tokio::time::timeout(o.installer_timeout, child.wait()).await {
        Ok(Ok(s)) if s.success() => return Ok(()),
        Ok(Ok(s)) => s.to_string(),
        Ok(Err(e)) => format!("waiting for it failed: {e}"),
        Err(_) => {
            let _ = child.kill().await;
            format!("it was stopped after {} s", o.installer_timeout.as_secs())
        }
    };
    Err(ProvisionError::Installer {
        loader,
        command,
        status,
        tail: tail(&log),
    })
}

/// The last lines of the log (at most [`TAIL_BYTES`]).
fn tail(log: &Path) -> String {
    use std::io::{Read as _, Seek as _};
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(std::io::SeekFrom::Start(len.saturating_sub(TAIL_BYTES)));
        let _ = f.take(TAIL_BYTES).read_to_end(&mut buf);
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(20);
    let out = lines[start..].join("\n");
    if out.trim().is_empty() {
        "(no output)".into()
    } else {
        out
    }
}
