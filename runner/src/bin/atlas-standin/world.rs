//! The stand-in's world directory: `level.dat`, one region file, and a save
//! log appended to on every save, so a world changes over time. Contents
//! depend only on the level name and the number of saves (no timestamps), so
//! the same sequence of saves gives the same bytes.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The size of an empty region file: the location and timestamp tables.
const REGION_HEADER: usize = 8192;
/// What `corrupt_world_on_start` writes over the region file and `level.dat`.
const GARBAGE: &[u8] = b"\x00\xffcorrupted by atlas-standin (corrupt_world_on_start)\xff\x00";

/// A world on disk.
#[derive(Debug)]
pub struct World {
    dir: PathBuf,
    name: String,
    saves: u64,
}

impl World {
    /// Opens `<server>/<name>`, creating a fresh world when `level.dat` is
    /// missing; an unreadable `level.dat` is an error (like a real server).
    pub fn open(server_dir: &Path, name: &str) -> io::Result<Self> {
        let dir = server_dir.join(name);
        let level = dir.join("level.dat");
        let mut world = Self {
            dir,
            name: name.to_owned(),
            saves: 0,
        };
        match std::fs::read(&level) {
            Ok(bytes) => {
                world.saves = parse_saves(&bytes).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} is not a level.dat", level.display()),
                    )
                })?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(world.dir.join("region"))?;
                std::fs::write(world.dir.join("region/r.0.0.mca"), vec![0u8; REGION_HEADER])?;
                world.write_level()?;
            }
            Err(e) => return Err(e),
        }
        Ok(world)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many times this world has been saved.
    #[cfg(test)]
    pub fn saves(&self) -> u64 {
        self.saves
    }

    /// A save: bumps the counter in `level.dat` and appends to `data/standin-saves.log`.
    pub fn save(&mut self) -> io::Result<()> {
        self.saves += 1;
        std::fs::create_dir_all(self.dir.join("data"))?;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("data/standin-saves.log"))?;
        writeln!(log, "save {} of level {}", self.saves, self.name)?;
        log.sync_all()?;
        self.write_level()
    }

    /// Damages the world on purpose (for rollback tests).
    pub fn corrupt(&self) -> io::Result<()> {
        std::fs::write(self.dir.join("region/r.0.0.mca"), GARBAGE)?;
        std::fs::write(self.dir.join("level.dat"), GARBAGE)
    }

    fn write_level(&self) -> io::Result<()> {
        let text = format!(
            "atlas-standin level.dat\nLevelName={}\nVersion={}\nsaves={}\n",
            self.name,
            crate::settings::VERSION,
            self.saves
        );
        let tmp = self.dir.join("level.dat_new");
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, self.dir.join("level.dat"))
    }
}

fn parse_saves(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if !text.starts_with("atlas-standin level.dat\n") {
        return None;
    }
    text.lines()
        .find_map(|l| l.strip_prefix("saves="))
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for sub in ["level.dat", "region/r.0.0.mca", "data/standin-saves.log"] {
            out.push((sub.to_owned(), std::fs::read(dir.join(sub)).unwrap_or_default()));
        }
        out
    }

    #[test]
    fn saves_are_deterministic_and_persist() {
        let (a, b) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        for t in [&a, &b] {
            let mut w = World::open(t.path(), "world").expect("create");
            w.save().expect("save");
            w.save().expect("save");
        }
        assert_eq!(
            snapshot(&a.path().join("world")),
            snapshot(&b.path().join("world"))
        );
        let mut w = World::open(a.path(), "world").expect("reopen");
        assert_eq!(w.saves(), 2);
        let before = snapshot(w.dir());
        w.save().expect("save");
        assert_ne!(snapshot(w.dir()), before, "a save changes the world");
        let log = std::fs::read_to_string(w.dir().join("data/standin-saves.log")).expect("log");
        assert_eq!(log.lines().count(), 3);
        assert_eq!(
            std::fs::metadata(w.dir().join("region/r.0.0.mca"))
                .expect("region")
                .len(),
            8192
        );
    }

    #[test]
    fn a_corrupted_world_does_not_open() {
        let t = tempfile::tempdir().expect("tmp");
        World::open(t.path(), "w")
            .expect("create")
            .corrupt()
            .expect("corrupt");
        let e = World::open(t.path(), "w").expect_err("corrupt");
        assert!(e.to_string().contains("not a level.dat"), "{e}");
    }
}
