//! `atlas-builder check`: offline validation of a pack (packwiz or native),
//! reporting every problem at once with its file and line, and a summary of
//! what the pack holds. Nothing is downloaded or written.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::pack::{NativePack, PACK_FILE, PackError};
use crate::packwiz::toml_doc::{self, Keys};
use crate::packwiz::{
    self, Diagnostic, DirFiles, EntryStatus, PackFiles, PackwizError, PackwizPack, Severity,
};
use crate::plan::{PlanError, PlanOptions};
use crate::repo::PackSource;

/// The check could not run (as opposed to finding problems in the pack).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
}

/// The check ran and found errors; the report says which.
#[derive(Debug, thiserror::Error)]
#[error("the pack has {errors} error(s)")]
pub struct CheckFailed {
    pub errors: usize,
}

impl crate::exit::HasExitClass for CheckError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        crate::exit::ExitClass::Pack
    }
}

impl crate::exit::HasExitClass for CheckFailed {
    fn exit_class(&self) -> crate::exit::ExitClass {
        crate::exit::ExitClass::Pack
    }
}

/// Which pack format was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackFormat {
    Packwiz,
    Native,
    /// No readable `pack.toml`.
    Unknown,
}

/// Counts over the pack's files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckSummary {
    /// Files the pack installs (native: manifest files; packwiz: index entries).
    pub files: usize,
    /// packwiz: `[[files]]` entries in the index.
    pub index_entries: usize,
    /// packwiz: metafiles read (index entries with `metafile = true` that parsed).
    pub metafiles: usize,
    /// Installed files by side (packwiz: metafiles only; plain files are `both`).
    pub by_side: BTreeMap<String, usize>,
    /// packwiz: metafiles by `[download] mode`.
    pub by_download_mode: BTreeMap<String, usize>,
    /// packwiz: metafiles by `[download] hash-format`.
    pub by_hash_format: BTreeMap<String, usize>,
    /// Files the player may switch off.
    pub optional: usize,
    /// packwiz: metafiles whose file can only be fetched through CurseForge's API.
    pub curseforge_api: Vec<String>,
    /// packwiz: index entries whose file is absent.
    pub missing: Vec<String>,
    /// packwiz: index entries whose file does not match the listed hash.
    pub hash_mismatches: Vec<String>,
}

/// The result of a check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The pack directory as given.
    pub pack_dir: String,
    pub format: PackFormat,
    /// The pack id (native: `id`; packwiz: from the name or `--pack-id`'s default).
    pub id: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub minecraft: Option<String>,
    /// e.g. "fabric 0.16.5"; `None` for vanilla or when unknown.
    pub loader: Option<String>,
    pub errors: usize,
    pub warnings: usize,
    /// Every problem, errors and warnings, in the order found.
    pub diagnostics: Vec<Diagnostic>,
    pub summary: CheckSummary,
    /// Time the check took.
    pub elapsed_ms: u64,
}

impl CheckReport {
    fn new(pack_dir: &str, format: PackFormat) -> Self {
        Self {
            pack_dir: pack_dir.to_owned(),
            format,
            id: None,
            name: None,
            version: None,
            minecraft: None,
            loader: None,
            errors: 0,
            warnings: 0,
            diagnostics: Vec::new(),
            summary: CheckSummary::default(),
            elapsed_ms: 0,
        }
    }

    pub fn ok(&self) -> bool {
        self.errors == 0
    }

    /// `Err(CheckFailed)` when the report has errors.
    pub fn result(&self) -> Result<(), CheckFailed> {
        if self.ok() {
            Ok(())
        } else {
            Err(CheckFailed { errors: self.errors })
        }
    }

    fn finish(mut self, started: Instant) -> Self {
        self.errors = self.diagnostics.iter().filter(|d| d.is_error()).count();
        self.warnings = self.diagnostics.len() - self.errors;
        self.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Human-readable lines: every diagnostic, then the summary.
    pub fn human(&self) -> String {
        let mut s = String::new();
        for d in &self.diagnostics {
            let _ = writeln!(s, "{d}");
        }
        let format = match self.format {
            PackFormat::Packwiz => "packwiz pack",
            PackFormat::Native => "Atlas pack",
            PackFormat::Unknown => "pack",
        };
        let _ = write!(s, "{format}");
        if let Some(id) = &self.id {
            let _ = write!(s, " `{id}`");
        }
        match (&self.name, &self.version) {
            (Some(name), Some(version)) => {
                let _ = write!(s, " ({name:?} {version})");
            }
            (Some(name), None) => {
                let _ = write!(s, " ({name:?})");
            }
            _ => {}
        }
        let _ = write!(s, " in {}", self.pack_dir);
        if let Some(mc) = &self.minecraft {
            let _ = write!(
                s,
                " (minecraft {mc}, {})",
                self.loader.as_deref().unwrap_or("vanilla")
            );
        }
        let sum = &self.summary;
        let counts = |m: &BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if self.format == PackFormat::Packwiz {
            let _ = write!(
                s,
                "\n  index: {} entries ({} metafiles), {} missing, {} hash mismatches\
                 \n  metafiles by side: {}; by download: {}; by hash: {}; optional {}",
                sum.index_entries,
                sum.metafiles,
                sum.missing.len(),
                sum.hash_mismatches.len(),
                counts(&sum.by_side),
                counts(&sum.by_download_mode),
                counts(&sum.by_hash_format),
                sum.optional,
            );
            let _ = write!(
                s,
                "\n  needs the CurseForge API: {} file(s)",
                sum.curseforge_api.len()
            );
            for p in sum.curseforge_api.iter().take(5) {
                let _ = write!(s, "\n    {p}");
            }
            if sum.curseforge_api.len() > 5 {
                let _ = write!(
                    s,
                    "\n    ... and {} more (see --json)",
                    sum.curseforge_api.len() - 5
                );
            }
        } else if self.format == PackFormat::Native && !sum.by_side.is_empty() {
            let _ = write!(
                s,
                "\n  files: {} ({}); optional {}",
                sum.files,
                counts(&sum.by_side),
                sum.optional
            );
        }
        let _ = write!(
            s,
            "\n{}: {} error(s), {} warning(s) ({} ms)",
            if self.ok() { "ok" } else { "FAILED" },
            self.errors,
            self.warnings,
            self.elapsed_ms
        );
        s
    }
}

fn read_pack_toml(files: &impl PackFiles) -> Result<Option<Vec<u8>>, CheckError> {
    files.read(PACK_FILE).map_err(|error| CheckError::Io {
        path: PACK_FILE.to_owned(),
        error,
    })
}

fn is_packwiz(bytes: &[u8]) -> bool {
    packwiz::is_packwiz_pack_toml(&String::from_utf8_lossy(bytes))
}

/// Checks the pack in a git repository (at its commit, or its working tree when
/// `source` was opened with `allow_dirty`). Diagnostics name files relative to the
/// repository root.
pub fn check_source(source: &PackSource, pack_dir: &str) -> Result<CheckReport, CheckError> {
    let started = Instant::now();
    let sub = source.commit.subdirectory.as_str();
    let mut report = match read_pack_toml(source)? {
        Some(bytes) if !is_packwiz(&bytes) => {
            let mut report = CheckReport::new(pack_dir, PackFormat::Native);
            match crate::build::native::check(source, &PlanOptions::default()) {
                Ok(manifest) => {
                    let m = &manifest;
                    report.id = Some(m.pack_id.clone());
                    report.name = Some(m.name.clone());
                    report.version = Some(m.version.clone());
                    report.minecraft = Some(m.minecraft_version.clone());
                    report.loader = m.loader.as_ref().map(|l| {
                        let kind = l
                            .kind()
                            .as_str_name()
                            .trim_start_matches("LOADER_KIND_")
                            .to_ascii_lowercase();
                        format!("{kind} {}", l.version).trim().to_owned()
                    });
                    report.summary.files = m.files.len();
                    for f in &m.files {
                        let side = f
                            .side()
                            .as_str_name()
                            .trim_start_matches("SIDE_")
                            .to_ascii_lowercase();
                        *report.summary.by_side.entry(side).or_default() += 1;
                        report.summary.optional += usize::from(f.optional);
                    }
                }
                Err(e) => native_error(&mut report, &bytes, &e),
            }
            report
        }
        _ => check_files(source, pack_dir),
    };
    check_settings(source, &mut report)?;
    if !sub.is_empty() {
        for d in &mut report.diagnostics {
            if !d.file.starts_with(&format!("{sub}/")) {
                d.file = format!("{sub}/{}", d.file);
            }
        }
    }
    worktree_warning(source, &mut report);
    Ok(report.finish(started))
}

/// Warns when the working tree differs from the commit checked: what is
/// built is the commit, so uncommitted edits are neither checked nor built.
fn worktree_warning(source: &PackSource, report: &mut CheckReport) {
    let changes = match source.worktree_changes() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("comparing the working tree with HEAD: {}", crate::exit::chain(&e));
            return;
        }
    };
    if changes.is_empty() {
        return;
    }
    const SHOWN: usize = 5;
    let mut list = changes.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if changes.len() > SHOWN {
        list.push_str(&format!(" and {} more", changes.len() - SHOWN));
    }
    let commit = &source.commit.id[..12.min(source.commit.id.len())];
    let dir = match source.commit.subdirectory.as_str() {
        "" => ".",
        sub => sub,
    };
    report.diagnostics.push(Diagnostic::warning(
        dir,
        None,
        format!(
            "the working tree differs from HEAD ({list}): checked commit {commit}, which is what publish builds; \
             commit the changes, or pass --allow-dirty to check the working tree"
        ),
    ));
}

/// Checks the pack in a plain directory (which need not be a git repository).
/// Diagnostics name files relative to `dir`.
pub fn check_dir(dir: &Path) -> Result<CheckReport, CheckError> {
    let started = Instant::now();
    let pack_dir = dir.display().to_string();
    let files = DirFiles::open(dir).map_err(|error| CheckError::Io {
        path: pack_dir.clone(),
        error,
    })?;
    let mut report = match read_pack_toml(&files)? {
        Some(bytes) if !is_packwiz(&bytes) => {
            let mut report = CheckReport::new(&pack_dir, PackFormat::Native);
            let parsed = String::from_utf8(bytes.clone())
                .map_err(|_| PackError::Invalid {
                    file: PACK_FILE.to_owned(),
                    field: "(file)".into(),
                    message: "is not UTF-8 text".into(),
                })
                .and_then(|text| NativePack::parse(&text, PACK_FILE));
            match parsed {
                Ok(p) => {
                    report.id = Some(p.id);
                    report.name = Some(p.name);
                    report.version = Some(p.version);
                    report.minecraft = Some(p.minecraft);
                    let kind = format!("{:?}", p.loader.kind).to_ascii_lowercase();
                    report.loader = Some(
                        format!("{kind} {}", p.loader.version.unwrap_or_default())
                            .trim()
                            .to_owned(),
                    );
                    report.diagnostics.push(Diagnostic::warning(
                        PACK_FILE,
                        None,
                        "native pack outside git: only pack.toml was checked (use --repo to plan the build)",
                    ));
                }
                Err(e) => native_error(&mut report, &bytes, &PlanError::Pack(e)),
            }
            report
        }
        _ => check_files(&files, &pack_dir),
    };
    check_settings(&files, &mut report)?;
    Ok(report.finish(started))
}

/// Checks a packwiz pack (or reports the missing `pack.toml`).
fn check_files(files: &impl PackFiles, pack_dir: &str) -> CheckReport {
    let mut report = CheckReport::new(pack_dir, PackFormat::Packwiz);
    let (pack, diags) = match PackwizPack::load(files) {
        Ok(loaded) => loaded,
        Err(PackwizError::Invalid(diags)) => {
            if diags.iter().any(|d| d.message.starts_with("no pack.toml")) {
                report.format = PackFormat::Unknown;
            }
            report.diagnostics = diags;
            return report;
        }
        Err(e @ PackwizError::Read { .. }) => {
            report
                .diagnostics
                .push(Diagnostic::error(PACK_FILE, None, e.to_string()));
            return report;
        }
    };
    report.diagnostics = diags;
    let p = &pack.pack;
    report.id = Some(crate::plan::pack_id_from_name(&p.name));
    report.name = Some(p.name.clone());
    report.version = p.version.clone();
    report.minecraft = Some(p.minecraft.clone());
    report.loader = p
        .loader
        .as_ref()
        .map(|l| format!("{} {}", l.loader.key(), l.version));
    let sum = &mut report.summary;
    sum.index_entries = pack.entries.len();
    sum.files = pack.entries.len();
    sum.metafiles = pack.metafiles.len();
    for e in &pack.entries {
        match e.status {
            EntryStatus::Missing => sum.missing.push(e.path.clone()),
            EntryStatus::Mismatch => sum.hash_mismatches.push(e.path.clone()),
            EntryStatus::Verified | EntryStatus::Unchecked => {}
        }
    }
    for m in &pack.metafiles {
        *sum.by_side.entry(m.side.name().to_owned()).or_default() += 1;
        *sum.by_download_mode
            .entry(m.download.mode.name().to_owned())
            .or_default() += 1;
        *sum.by_hash_format
            .entry(m.download.hash.format.name().to_owned())
            .or_default() += 1;
        sum.optional += usize::from(m.option.as_ref().is_some_and(|o| o.optional));
        if m.needs_curseforge_api() {
            sum.curseforge_api.push(m.path.clone());
        }
    }
    report
}

/// The fields of a native `pack.toml` (`crate::pack::NativePack`), for
/// reporting every unknown field at once: serde stops at the first.
/// `tests::native_keys_are_the_structs_fields` holds it to the structs.
const NATIVE_KEYS: Keys = Keys::Only(&[
    ("id", Keys::Any),
    ("name", Keys::Any),
    ("version", Keys::Any),
    ("minecraft", Keys::Any),
    ("description", Keys::Any),
    ("author", Keys::Any),
    (
        "loader",
        Keys::Only(&[("kind", Keys::Any), ("version", Keys::Any)]),
    ),
    (
        "files",
        Keys::Only(&[
            ("include", Keys::Any),
            ("exclude", Keys::Any),
            ("side", Keys::Any),
            ("optional", Keys::Any),
            ("default", Keys::Any),
            ("preserve", Keys::Any),
            ("description", Keys::Any),
        ]),
    ),
    (
        "mods",
        Keys::Only(&[
            ("name", Keys::Any),
            (
                "modrinth",
                Keys::Only(&[("project", Keys::Any), ("version", Keys::Any)]),
            ),
            (
                "curseforge",
                Keys::Only(&[("project", Keys::Any), ("file", Keys::Any)]),
            ),
            ("url", Keys::Any),
            ("hash", Keys::Any),
            ("path", Keys::Any),
            ("side", Keys::Any),
            ("optional", Keys::Any),
            ("default", Keys::Any),
            ("filename", Keys::Any),
            ("dir", Keys::Any),
            ("mirror", Keys::Any),
            ("description", Keys::Any),
        ]),
    ),
]);

/// Adds the native pack's parse or plan error to `report`, after every
/// unknown field of its `pack.toml` (with the nearest known name): serde
/// reports only the first, and a creator should fix them all in one go.
fn native_error(report: &mut CheckReport, pack_toml: &[u8], e: &PlanError) {
    let mut unknown = Vec::new();
    if let Ok(text) = std::str::from_utf8(pack_toml)
        && let Ok(doc) = toml_doc::parse(PACK_FILE, text)
    {
        toml_doc::unknown_keys(
            PACK_FILE,
            text,
            doc.get_ref(),
            NATIVE_KEYS,
            Severity::Error,
            &mut unknown,
        );
        // The header still names the pack when the rest does not parse.
        if report.id.is_none()
            && let Some(toml::de::DeValue::String(id)) = doc.get_ref().get("id").map(|v| v.get_ref())
        {
            report.id = Some(id.to_string());
        }
    }
    let first = plan_diagnostic(e);
    // The serde error is the first unknown field again: keep the fuller list.
    let repeated = !unknown.is_empty() && first.message.contains("unknown field");
    report.diagnostics.extend(unknown);
    if !repeated {
        report.diagnostics.push(first);
    }
}

/// One diagnostic for a native pack's planning error.
/// Checks `atlas.toml` (beside either layout) when the pack has one.
fn check_settings(files: &impl PackFiles, report: &mut CheckReport) -> Result<(), CheckError> {
    use crate::settings::{ATLAS_FILE, AtlasSettings};
    let Some(bytes) = files.read(ATLAS_FILE).map_err(|error| CheckError::Io {
        path: ATLAS_FILE.to_owned(),
        error,
    })?
    else {
        return Ok(());
    };
    let parsed = String::from_utf8(bytes)
        .map_err(|_| PackError::Invalid {
            file: ATLAS_FILE.to_owned(),
            field: "(file)".into(),
            message: "is not UTF-8 text".into(),
        })
        .and_then(|text| AtlasSettings::parse(text.trim_start_matches('\u{feff}'), ATLAS_FILE));
    if let Err(e) = parsed {
        report.diagnostics.push(plan_diagnostic(&PlanError::Pack(e)));
    }
    Ok(())
}

fn plan_diagnostic(e: &PlanError) -> Diagnostic {
    if let PlanError::Pack(PackError::Syntax {
        file,
        line,
        column,
        message,
    }) = e
    {
        return Diagnostic {
            column: Some(*column),
            ..Diagnostic::error(file.clone(), Some(*line), message.clone())
        };
    }
    let text = e.to_string();
    let file = match e {
        PlanError::Pack(PackError::Invalid { file, .. } | PackError::Missing { file })
        | PlanError::Glob { file, .. }
        | PlanError::NoMatch { file, .. } => file.clone(),
        _ => PACK_FILE.to_owned(),
    };
    let message = text
        .strip_prefix(&format!("{file}: "))
        .unwrap_or(&text)
        .to_owned();
    Diagnostic::error(file, None, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::{CurseForgeRef, FilesEntry, LoaderDef, ModEntry, ModrinthRef, NativePack};
    use std::collections::BTreeSet;

    /// The field names serde knows for `T`, asked of `T`'s own
    /// `Deserialize` (a deserializer that only answers `deserialize_struct`).
    fn fields<T: serde::de::DeserializeOwned>() -> BTreeSet<&'static str> {
        #[derive(Debug)]
        struct Fields(&'static [&'static str]);
        impl std::fmt::Display for Fields {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }
        impl std::error::Error for Fields {}
        impl serde::de::Error for Fields {
            fn custom<M: std::fmt::Display>(_: M) -> Self {
                Fields(&[])
            }
        }
        struct Probe;
        impl<'de> serde::Deserializer<'de> for Probe {
            type Error = Fields;
            fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
                Err(Fields(&[]))
            }
            fn deserialize_struct<V: serde::de::Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Fields> {
                Err(Fields(fields))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        match T::deserialize(Probe) {
            Err(Fields(f)) => f.iter().copied().collect(),
            Ok(_) => panic!("the probe never yields a value"),
        }
    }

    fn names(keys: Keys) -> BTreeSet<&'static str> {
        match keys {
            Keys::Only(list) => list.iter().map(|(k, _)| *k).collect(),
            _ => panic!("a table's keys"),
        }
    }

    fn sub(keys: Keys, name: &str) -> Keys {
        match keys {
            Keys::Only(list) => list
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v)
                .unwrap_or_else(|| panic!("no `{name}`")),
            _ => panic!("a table's keys"),
        }
    }

    #[test]
    fn native_keys_are_the_structs_fields() {
        assert_eq!(names(NATIVE_KEYS), fields::<NativePack>(), "pack.toml");
        assert_eq!(
            names(sub(NATIVE_KEYS, "loader")),
            fields::<LoaderDef>(),
            "[loader]"
        );
        assert_eq!(
            names(sub(NATIVE_KEYS, "files")),
            fields::<FilesEntry>(),
            "[[files]]"
        );
        let mods = sub(NATIVE_KEYS, "mods");
        assert_eq!(names(mods), fields::<ModEntry>(), "[[mods]]");
        assert_eq!(names(sub(mods, "modrinth")), fields::<ModrinthRef>(), "modrinth");
        assert_eq!(
            names(sub(mods, "curseforge")),
            fields::<CurseForgeRef>(),
            "curseforge"
        );
    }
}
