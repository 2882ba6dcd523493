//! Writing a `.mrpack`, byte-reproducibly: the index first, then the
//! overrides in the order given (callers sort them by entry name), every
//! entry with a fixed timestamp (1980-01-01) and a fixed mode.

use std::io::{Read, Seek, Write};

use atlas_proto::v1::Side;

use super::{INDEX_FILE, MrIndex, override_dir};

/// The archive could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The index or the zip structure.
    #[error("{0}")]
    Zip(String),
    /// Copying an override's bytes into the archive.
    #[error("adding `{name}`")]
    Copy {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

impl crate::exit::HasExitClass for WriteError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        crate::exit::ExitClass::Error
    }
}

/// The entry name of an override file: its path under the side's folder.
pub fn override_name(side: Side, path: &str) -> String {
    format!("{}{path}", override_dir(side))
}

/// A `.mrpack` being written to `W`.
pub struct MrpackWriter<W: Write + Seek> {
    zip: zip::ZipWriter<W>,
}

impl<W: Write + Seek> std::fmt::Debug for MrpackWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MrpackWriter").finish_non_exhaustive()
    }
}

fn options(mode: u32, size: u64) -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(mode)
        .large_file(size >= u64::from(u32::MAX))
}

fn zip_err(e: impl std::fmt::Display) -> WriteError {
    WriteError::Zip(e.to_string())
}

impl<W: Write + Seek> MrpackWriter<W> {
    /// Starts the archive with its index.
    pub fn new(out: W, index: &MrIndex) -> Result<Self, WriteError> {
        let json = serde_json::to_vec_pretty(index).map_err(zip_err)?;
        let mut zip = zip::ZipWriter::new(out);
        zip.start_file(INDEX_FILE, options(0o644, json.len() as u64))
            .map_err(zip_err)?;
        zip.write_all(&json).map_err(zip_err)?;
        Ok(Self { zip })
    }

    /// Adds the override entry `name` ([`override_name`]) of `size` bytes,
    /// read from `bytes`. Add entries in name order.
    pub fn add_override(
        &mut self,
        name: &str,
        executable: bool,
        size: u64,
        bytes: &mut dyn Read,
    ) -> Result<(), WriteError> {
        let mode = if executable { 0o755 } else { 0o644 };
        self.zip.start_file(name, options(mode, size)).map_err(zip_err)?;
        std::io::copy(bytes, &mut self.zip).map_err(|source| WriteError::Copy {
            name: name.to_owned(),
            source,
        })?;
        Ok(())
    }

    /// Writes the central directory; returns the output.
    pub fn finish(self) -> Result<W, WriteError> {
        self.zip.finish().map_err(zip_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mrpack::read::read;
    use std::collections::BTreeMap;

    fn index() -> MrIndex {
        MrIndex {
            format_version: 1,
            game: "minecraft".into(),
            version_id: "1".into(),
            name: "X".into(),
            summary: None,
            files: Vec::new(),
            dependencies: BTreeMap::from([("minecraft".into(), "1.21.1".into())]),
        }
    }

    fn archive() -> Vec<u8> {
        let mut w = MrpackWriter::new(std::io::Cursor::new(Vec::new()), &index()).expect("new");
        for (side, path, bytes) in [
            (Side::Client, "options.txt", &b"fov:70"[..]),
            (Side::Both, "config/a.toml", b"a = 1"),
        ] {
            let name = override_name(side, path);
            w.add_override(&name, false, bytes.len() as u64, &mut &bytes[..])
                .expect("add");
        }
        w.finish().expect("finish").into_inner()
    }

    #[test]
    fn written_archives_are_reproducible_and_read_back() {
        let bytes = archive();
        assert_eq!(bytes, archive(), "same input, same bytes");
        let dir = tempfile::tempdir().expect("tmp");
        let cache = crate::cache::Cache::open(dir.path()).expect("cache");
        let m = read(
            std::io::Cursor::new(bytes),
            "x.mrpack",
            &cache,
            &atlas_proto::Limits::DEFAULT,
        )
        .expect("read back");
        assert_eq!(m.index, index());
        let got: Vec<(&str, Side)> = m.overrides.iter().map(|o| (o.path.as_str(), o.side)).collect();
        assert_eq!(
            got,
            [("config/a.toml", Side::Both), ("options.txt", Side::Client)]
        );
    }
}
