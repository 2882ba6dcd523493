//! packwiz metafiles (`*.pw.toml`, `*.toml` before packwiz 2022-05): one
//! downloaded file each — its name, install file name, side, download (URL,
//! or resolved via CurseForge's API), optional-mod settings and update
//! sources, as core/mod.go reads them. Like packwiz and packwiz-installer,
//! fields nobody reads are ignored (each with a warning naming its line):
//! `pin` (written by `packwiz pin`), `[update.curseforge] release-channel`
//! (written until packwiz 1cbc9d4, October 2021), unknown keys and updaters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use atlas_proto::v1::Side;

use super::diagnostic::{Diagnostic, Severity};
use super::files;
use super::toml_doc::{self, Keys};
use atlas_proto::upstream::{HashFormat, UpstreamHash};

/// Which installs get the file (`side`, default `both`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetaSide {
    #[default]
    Both,
    Client,
    Server,
}

impl MetaSide {
    pub fn name(self) -> &'static str {
        match self {
            Self::Both => "both",
            Self::Client => "client",
            Self::Server => "server",
        }
    }

    /// The manifest's side.
    pub fn side(self) -> Side {
        match self {
            Self::Both => Side::Both,
            Self::Client => Side::Client,
            Self::Server => Side::Server,
        }
    }
}

/// How the file is fetched (`[download] mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum DownloadMode {
    /// `url` (the default): from `[download] url`.
    #[default]
    #[serde(rename = "url")]
    Url,
    /// `metadata:curseforge`: no URL; resolved through CurseForge's API
    /// from `[update.curseforge]` project and file ids.
    #[serde(rename = "metadata:curseforge")]
    CurseForge,
}

impl DownloadMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Url => "url",
            Self::CurseForge => "metadata:curseforge",
        }
    }
}

/// `[download]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// Absent in `metadata:curseforge` mode. Kept as written (percent-encoding included).
    pub url: Option<String>,
    pub hash: UpstreamHash,
    pub mode: DownloadMode,
}

/// `[option]`: the file is optional for the player.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct OptionalFile {
    #[serde(default)]
    pub optional: bool,
    /// For optional files: selected unless the player says otherwise.
    #[serde(default)]
    pub default: bool,
    pub description: Option<String>,
}

/// `[update.modrinth]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ModrinthUpdate {
    #[serde(rename = "mod-id")]
    pub mod_id: String,
    pub version: String,
}

/// `[update.curseforge]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct CurseForgeUpdate {
    #[serde(rename = "project-id")]
    pub project_id: u64,
    #[serde(rename = "file-id")]
    pub file_id: u64,
}

/// `[update]`: where newer versions come from (and, for CurseForge mode, the file itself).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Updates {
    pub modrinth: Option<ModrinthUpdate>,
    pub curseforge: Option<CurseForgeUpdate>,
    /// Other updaters (packwiz's `github`), kept whole; unknown ones are reported.
    #[serde(flatten)]
    pub other: BTreeMap<String, toml::Value>,
}

/// A parsed metafile.
#[derive(Debug, Clone, PartialEq)]
pub struct Metafile {
    /// Path of the `.pw.toml`, relative to the pack directory.
    pub path: String,
    pub name: String,
    /// `filename` as written.
    pub filename: String,
    /// Where the file is installed: the metafile's directory + `filename`.
    pub install_path: String,
    pub side: MetaSide,
    pub download: Download,
    pub option: Option<OptionalFile>,
    pub update: Updates,
}

impl Metafile {
    /// The file can only be fetched through CurseForge's API.
    pub fn needs_curseforge_api(&self) -> bool {
        self.download.mode == DownloadMode::CurseForge
    }
}

#[derive(Debug, Deserialize)]
struct Raw {
    name: Option<String>,
    filename: Option<Spanned<String>>,
    side: Option<Spanned<String>>,
    download: Option<Spanned<RawDownload>>,
    option: Option<OptionalFile>,
    #[serde(default)]
    update: Updates,
}

#[derive(Debug, Deserialize)]
struct RawDownload {
    url: Option<Spanned<String>>,
    #[serde(rename = "hash-format")]
    hash_format: Option<Spanned<String>>,
    hash: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
}

const KEYS: Keys = Keys::Only(&[
    ("name", Keys::Any),
    ("filename", Keys::Any),
    ("side", Keys::Any),
    // `packwiz pin` / `unpin`: only `packwiz update` reads it.
    ("pin", Keys::Any),
    (
        "download",
        Keys::Only(&[
            ("url", Keys::Any),
            ("hash-format", Keys::Any),
            ("hash", Keys::Any),
            ("mode", Keys::Any),
        ]),
    ),
    (
        "option",
        Keys::Only(&[
            ("optional", Keys::Any),
            ("default", Keys::Any),
            ("description", Keys::Any),
        ]),
    ),
    (
        "update",
        Keys::Only(&[
            (
                "modrinth",
                Keys::Only(&[("mod-id", Keys::Any), ("version", Keys::Any)]),
            ),
            (
                "curseforge",
                Keys::Only(&[
                    ("project-id", Keys::Any),
                    ("file-id", Keys::Any),
                    (
                        "release-channel",
                        Keys::Legacy("was written by packwiz until October 2021 and is read by nothing"),
                    ),
                ]),
            ),
            (
                "github",
                Keys::Only(&[
                    ("slug", Keys::Any),
                    ("branch", Keys::Any),
                    ("tag", Keys::Any),
                    ("regex", Keys::Any),
                ]),
            ),
        ]),
    ),
]);

/// Parses the metafile at pack path `file`. Every problem goes to `diags`;
/// `None` when the metafile is unusable (an error was reported).
pub fn parse(file: &str, text: &str, diags: &mut Vec<Diagnostic>) -> Option<Metafile> {
    let errors_before = diags.iter().filter(|d| d.is_error()).count();
    let doc = match toml_doc::parse(file, text) {
        Ok(doc) => doc,
        Err(d) => {
            diags.push(d);
            return None;
        }
    };
    // packwiz and packwiz-installer ignore keys they do not know: so does
    // Atlas, with a warning (a typo like `filname` still fails below, as the
    // field it misspells is then missing).
    toml_doc::unknown_keys(file, text, doc.get_ref(), KEYS, Severity::Warning, diags);
    let raw: Raw = match toml_doc::typed(file, text, doc) {
        Ok(r) => r,
        Err(d) => {
            diags.push(d);
            return None;
        }
    };
    let line = |span: std::ops::Range<usize>| Some(toml_doc::line_of(text, span.start));
    let mut error = |line: Option<usize>, m: String| diags.push(Diagnostic::error(file, line, m));

    let name = raw.name.unwrap_or_default();
    if name.trim().is_empty() {
        error(None, "`name` is required".into());
    }
    let (filename, install_path) = match raw.filename {
        None => {
            error(None, "`filename` is required (the installed file's name)".into());
            (String::new(), None)
        }
        Some(f) => {
            let install = files::join(files::parent(file), f.get_ref())
                .map_err(|why| why.to_owned())
                .and_then(|p| {
                    atlas_proto::validate_path(&p)
                        .map(|()| p)
                        .map_err(|e| e.reason.to_owned())
                });
            match install {
                Ok(p) => (f.get_ref().clone(), Some(p)),
                Err(why) => {
                    error(
                        line(f.span()),
                        format!("`filename` `{}` cannot be installed: {why}", f.get_ref()),
                    );
                    (f.get_ref().clone(), None)
                }
            }
        }
    };
    let side = match raw.side {
        None => MetaSide::Both,
        Some(s) => match s.get_ref().as_str() {
            "both" | "" => MetaSide::Both,
            "client" => MetaSide::Client,
            "server" => MetaSide::Server,
            other => {
                error(
                    line(s.span()),
                    format!("`side` is `{other}`; expected \"client\", \"server\" or \"both\""),
                );
                MetaSide::Both
            }
        },
    };
    let download = match raw.download {
        None => {
            error(None, "[download] is required".into());
            None
        }
        Some(d) => {
            let d_line = line(d.span());
            let d = d.into_inner();
            let mode = match &d.mode {
                None => Some(DownloadMode::Url),
                Some(m) => match m.get_ref().as_str() {
                    "" | "url" => Some(DownloadMode::Url),
                    "metadata:curseforge" => Some(DownloadMode::CurseForge),
                    other => {
                        error(
                            line(m.span()),
                            format!(
                                "[download] `mode` is `{other}`; expected \"url\" or \"metadata:curseforge\""
                            ),
                        );
                        None
                    }
                },
            };
            let hash = match (&d.hash_format, &d.hash) {
                (Some(f), Some(h)) => match f.get_ref().parse::<HashFormat>() {
                    Err(e) => {
                        error(line(f.span()), format!("[download] {e}"));
                        None
                    }
                    Ok(format) => UpstreamHash::parse(format, h.get_ref())
                        .map_err(|e| error(line(h.span()), format!("[download] {e}")))
                        .ok(),
                },
                (None, _) => {
                    error(d_line, "[download] has no `hash-format`".into());
                    None
                }
                (_, None) => {
                    error(d_line, "[download] has no `hash`".into());
                    None
                }
            };
            let url = d.url.filter(|u| !u.get_ref().is_empty());
            match (mode, &url) {
                (Some(DownloadMode::Url), None) => error(d_line, "[download] has no `url`".into()),
                (Some(DownloadMode::Url), Some(u)) => match url::Url::parse(u.get_ref()) {
                    Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                    Ok(parsed) => error(
                        line(u.span()),
                        format!(
                            "[download] `url` has scheme `{}`; only http and https are fetched",
                            parsed.scheme()
                        ),
                    ),
                    Err(e) => error(
                        line(u.span()),
                        format!("[download] `url` is not a valid URL: {e}"),
                    ),
                },
                (Some(DownloadMode::CurseForge), _) if raw.update.curseforge.is_none() => error(
                    d_line,
                    "mode \"metadata:curseforge\" needs [update.curseforge] with `project-id` and `file-id`"
                        .into(),
                ),
                _ => {}
            }
            match (mode, hash) {
                (Some(mode), Some(hash)) => Some(Download {
                    url: url.map(Spanned::into_inner),
                    hash,
                    mode,
                }),
                _ => None,
            }
        }
    };
    let errors_after = diags.iter().filter(|d| d.is_error()).count();
    match (install_path, download) {
        (Some(install_path), Some(download)) if errors_after == errors_before => Some(Metafile {
            path: file.to_owned(),
            name,
            filename,
            install_path,
            side,
            download,
            option: raw.option,
            update: raw.update,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODRINTH: &str = "name = \"Sodium\"\nfilename = \"sodium 0.5.jar\"\nside = \"client\"\n\n[download]\n\
        url = \"https://cdn.modrinth.com/data/AANobbMI/versions/x/sodium%2B0.5.jar\"\nhash-format = \"sha512\"\n\
        hash = \"cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e\"\n\n\
        [option]\noptional = true\ndescription = \"Faster\"\n\n[update]\n[update.modrinth]\nmod-id = \"AANobbMI\"\nversion = \"x\"\n";

    const CURSEFORGE: &str = "name = \"JEI\"\r\nfilename = \"jei.jar\"\r\nside = \"both\"\r\n\r\n[download]\r\n\
        hash-format = \"sha1\"\r\nhash = \"da39a3ee5e6b4b0d3255bfef95601890afd80709\"\r\nmode = \"metadata:curseforge\"\r\n\r\n\
        [update]\r\n[update.curseforge]\r\nfile-id = 4712866\r\nproject-id = 238222\r\n";

    #[test]
    fn parses_a_modrinth_metafile() {
        let mut diags = Vec::new();
        let m = parse("mods/sodium.pw.toml", MODRINTH, &mut diags).expect("valid");
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(m.install_path, "mods/sodium 0.5.jar");
        assert_eq!(m.side, MetaSide::Client);
        assert_eq!(m.download.mode, DownloadMode::Url);
        assert!(
            m.download
                .url
                .as_deref()
                .is_some_and(|u| u.ends_with("sodium%2B0.5.jar"))
        );
        assert_eq!(m.download.hash.format, HashFormat::Sha512);
        assert_eq!(
            m.option.as_ref().map(|o| (o.optional, o.default)),
            Some((true, false))
        );
        assert_eq!(
            m.update.modrinth.as_ref().map(|u| u.mod_id.as_str()),
            Some("AANobbMI")
        );
        assert!(!m.needs_curseforge_api());
    }

    #[test]
    fn parses_a_curseforge_metafile_with_crlf() {
        let mut diags = Vec::new();
        let m = parse("mods/jei.pw.toml", CURSEFORGE, &mut diags).expect("valid");
        assert!(diags.is_empty(), "{diags:?}");
        assert!(m.needs_curseforge_api());
        assert_eq!(m.download.url, None);
        assert_eq!(
            m.update.curseforge,
            Some(CurseForgeUpdate {
                project_id: 238_222,
                file_id: 4_712_866
            })
        );
    }

    #[test]
    fn reports_problems_with_lines() {
        let text = MODRINTH
            .replace("filename =", "filname =")
            .replace("side = \"client\"", "side = \"clients\"");
        let mut diags = Vec::new();
        assert!(parse("mods/sodium.pw.toml", &text, &mut diags).is_none());
        let msgs: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert!(
            msgs.contains(
                &"mods/sodium.pw.toml:2: warning: unknown field `filname` is ignored; did you mean `filename`?"
                    .into()
            ),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("mods/sodium.pw.toml:3: error: `side` is `clients`")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains("`filename` is required")),
            "{msgs:?}"
        );
    }

    #[test]
    fn unknown_updater_is_a_warning_with_the_nearest_name() {
        let text = MODRINTH.replace("[update.modrinth]", "[update.modrith]");
        let mut diags = Vec::new();
        let m = parse("a.pw.toml", &text, &mut diags).expect("still usable");
        assert_eq!(
            diags.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "a.pw.toml:15: warning: unknown field `update.modrith` is ignored; did you mean `update.modrinth`?"
            ]
        );
        assert_eq!(m.update.modrinth, None);
    }

    #[test]
    fn pin_and_release_channel_are_read_as_packwiz_reads_them() {
        // `packwiz pin` writes `pin = true`; packwiz before October 2021 wrote
        // `release-channel` under [update.curseforge].
        let text = CURSEFORGE
            .replace("side = \"both\"\r\n", "side = \"both\"\r\npin = true\r\n")
            .replace(
                "project-id = 238222\r\n",
                "project-id = 238222\r\nrelease-channel = \"release\"\r\n",
            );
        let mut diags = Vec::new();
        let m = parse("mods/jei.pw.toml", &text, &mut diags).expect("accepted");
        assert_eq!(
            diags.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "mods/jei.pw.toml:15: warning: `update.curseforge.release-channel` was written by packwiz \
                 until October 2021 and is read by nothing; ignored"
            ]
        );
        assert_eq!(m.update.curseforge.map(|c| c.file_id), Some(4_712_866));
    }

    #[test]
    fn curseforge_mode_needs_ids_and_url_mode_needs_url() {
        let text = CURSEFORGE.replace("[update.curseforge]", "[update.modrinth]");
        let mut diags = Vec::new();
        // modrinth without its fields is a type error reported with a line
        assert!(parse("a.pw.toml", &text, &mut diags).is_none());
        assert!(diags.iter().any(|d| d.is_error()), "{diags:?}");
        let text = CURSEFORGE.replace("mode = \"metadata:curseforge\"", "mode = \"url\"");
        let mut diags = Vec::new();
        assert!(parse("a.pw.toml", &text, &mut diags).is_none());
        assert!(diags.iter().any(|d| d.message.contains("no `url`")), "{diags:?}");
    }
}
