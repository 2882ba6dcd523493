//! Runs the in-process S3 test server (s3s-fs, SigV4) as a process, for
//! benchmarks that drive the real binaries: `s3-server BUCKET` prints
//! `ENDPOINT ACCESS_KEY SECRET_KEY REGION` on one line, then serves until it
//! is killed. Data lives in a temporary directory, removed on a clean exit.

use std::io::Write as _;

use atlas_testkit::s3::{ACCESS_KEY, REGION, S3Server, SECRET_KEY};

fn main() -> anyhow::Result<()> {
    let bucket = std::env::args().nth(1).unwrap_or_else(|| "atlas".to_owned());
    let server = S3Server::start(&bucket)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} {ACCESS_KEY} {SECRET_KEY} {REGION}", server.endpoint())?;
    out.flush()?;
    drop(out);
    loop {
        std::thread::park();
    }
}
