//! A mod that could not be resolved or fetched ([`ModError`], all of a
//! pack's together in [`ModErrors`]), and the exit class of each resolver
//! error: above the providers, whose errors it wraps.

use std::path::PathBuf;

use crate::download::DownloadError;
use crate::exit::{ExitClass, HasExitClass};

use super::deps::{DepErrors, DepProblem};
use super::{curseforge, modrinth};

/// A mod could not be resolved or fetched. Each names the mod, the URL and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ModError {
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error(transparent)]
    Modrinth(#[from] modrinth::ModrinthError),
    #[error(transparent)]
    CurseForge(#[from] curseforge::CurseForgeError),
    #[error(
        "{defined_in}: {name}: the author does not allow third-party downloads of `{file_name}` \
         (CurseForge distribution disabled); download it by hand from {page} into {} and run again: \
         it is matched by hash, installed at `{dest}` and stays upstream-only",
        manual_dir.as_ref().map_or("a folder passed as --manual-dir".to_owned(), |d| format!("--manual-dir {}", d.display()))
    )]
    DistributionDisabled {
        name: String,
        defined_in: String,
        page: String,
        file_name: String,
        dest: String,
        manual_dir: Option<PathBuf>,
    },
    #[error("{defined_in}: {name}: {message}")]
    Invalid {
        name: String,
        defined_in: String,
        message: String,
    },
}

impl ModError {
    /// The host (`host[:port]`) that could not be reached, or kept failing
    /// (429/5xx) after the retries: an outage, not a mistake in the pack.
    pub fn outage_host(&self) -> Option<String> {
        let url = match self {
            Self::Download(e) => e.outage_url()?,
            Self::Modrinth(modrinth::ModrinthError::Api {
                url, outage: true, ..
            }) => url,
            Self::CurseForge(curseforge::CurseForgeError::Api {
                url, outage: true, ..
            }) => url,
            Self::CurseForge(curseforge::CurseForgeError::Forbidden {
                url,
                overloaded: true,
                ..
            }) => url,
            _ => return None,
        };
        Some(host_of(url))
    }
}

/// `host[:port]` of a URL, or the URL itself when it does not parse.
pub(crate) fn host_of(url: &str) -> String {
    ::url::Url::parse(url)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            Some(match u.port() {
                Some(p) => format!("{host}:{p}"),
                None => host,
            })
        })
        .unwrap_or_else(|| url.to_owned())
}

/// Every mod problem found, one per line; mods that failed because a host
/// was unreachable are summed up in one line per host.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(.0))]
pub struct ModErrors(pub Vec<ModError>);

/// A mod that cannot be resolved or fetched makes the pack unbuildable
/// (exit 3), unless its host was unreachable (exit 4: run again later).
impl HasExitClass for ModError {
    fn exit_class(&self) -> ExitClass {
        match self.outage_host() {
            Some(_) => ExitClass::Network,
            None => ExitClass::Pack,
        }
    }
}

/// Exit 4 when every failure is an outage; one real pack mistake makes it 3.
impl HasExitClass for ModErrors {
    fn exit_class(&self) -> ExitClass {
        match self.0.iter().all(|e| e.outage_host().is_some()) {
            true if !self.0.is_empty() => ExitClass::Network,
            _ => ExitClass::Pack,
        }
    }
}

impl HasExitClass for modrinth::ModrinthError {
    fn exit_class(&self) -> ExitClass {
        match self {
            Self::Api { outage: true, .. } => ExitClass::Network,
            _ => ExitClass::Pack,
        }
    }
}

impl HasExitClass for curseforge::CurseForgeError {
    fn exit_class(&self) -> ExitClass {
        match self {
            Self::Api { outage: true, .. } | Self::Forbidden { overloaded: true, .. } => ExitClass::Network,
            _ => ExitClass::Pack,
        }
    }
}

impl HasExitClass for DepProblem {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Pack
    }
}

impl HasExitClass for DepErrors {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Pack
    }
}

fn describe(errors: &[ModError]) -> String {
    let mut lines = Vec::new();
    // host -> (first failure, mods affected), in order of first appearance.
    let mut hosts: Vec<(String, String, usize)> = Vec::new();
    for e in errors {
        match e.outage_host() {
            Some(host) => match hosts.iter_mut().find(|h| h.0 == host) {
                Some(h) => h.2 += 1,
                None => hosts.push((host, crate::exit::chain(e), 1)),
            },
            None => lines.push(format!("  - {}", crate::exit::chain(e))),
        }
    }
    for (host, first, n) in &hosts {
        lines.push(format!(
            "  - {host} unreachable or failing, {n} mod(s) not fetched; the first: {first}"
        ));
    }
    let head = match (hosts.len(), lines.len() - hosts.len()) {
        (0, _) => format!("{} mod(s) could not be resolved or downloaded:", errors.len()),
        (h, 0) => format!(
            "{} mod(s) could not be resolved or downloaded: {h} host(s) unreachable; the pack may be fine, run again when the network or the service is back:",
            errors.len()
        ),
        (h, _) => format!(
            "{} mod(s) could not be resolved or downloaded ({h} host(s) unreachable):",
            errors.len()
        ),
    };
    std::iter::once(head).chain(lines).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outage(host: &str) -> ModError {
        ModError::Modrinth(modrinth::ModrinthError::Api {
            url: format!("http://{host}/v2/versions"),
            message: "unreachable after 4 attempts: refused".into(),
            outage: true,
        })
    }

    fn invalid() -> ModError {
        ModError::Invalid {
            name: "x".into(),
            defined_in: "pack.toml mods[3]".into(),
            message: "bad".into(),
        }
    }

    #[test]
    fn outages_are_summed_up_per_host_and_exit_4() {
        let e = ModErrors(vec![outage("a:1"), outage("a:1"), outage("b:2")]);
        assert_eq!(e.exit_class(), ExitClass::Network);
        let text = e.to_string();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("a:1 unreachable or failing, 2 mod(s)"), "{text}");
        assert!(text.contains("b:2 unreachable or failing, 1 mod(s)"), "{text}");
    }

    #[test]
    fn one_mistake_in_the_pack_makes_it_exit_3() {
        let e = ModErrors(vec![outage("a:1"), invalid()]);
        assert_eq!(e.exit_class(), ExitClass::Pack);
        let text = e.to_string();
        assert!(text.contains("pack.toml mods[3]: x: bad"), "{text}");
        assert!(text.contains("(1 host(s) unreachable)"), "{text}");
    }
}
