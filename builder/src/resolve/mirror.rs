//! The mirror decision: which mods are copied into the store, after
//! `atlas.toml`'s `[mirror]` policy ([`MirrorPolicy`]) and each entry's own
//! `mirror` flag.

use crate::settings::{MirrorMode, MirrorPolicy};

use super::spec::{ModSource, ModSpec};

impl MirrorPolicy {
    /// Whether the policy lets `spec` be mirrored (its own `mirror` aside).
    pub fn mirrors(&self, spec: &ModSpec) -> bool {
        let origin = spec.origin.as_deref().unwrap_or("");
        let per_source = match &spec.source {
            ModSource::Modrinth { .. } => self.modrinth,
            ModSource::CurseForge { .. } => self.curseforge,
            ModSource::Url { .. } if origin.starts_with("modrinth:") => self.modrinth,
            ModSource::Url { .. } if origin.starts_with("curseforge:") => self.curseforge,
            ModSource::Url { .. } => self.url,
        };
        per_source.unwrap_or(self.default) == MirrorMode::Mirror
    }

    /// `spec.mirror` after the policy: the entry's own `mirror = false` wins.
    pub fn apply(&self, spec: &mut ModSpec) {
        spec.mirror = spec.mirror && self.mirrors(spec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::AtlasSettings;

    fn spec(source: ModSource, origin: Option<&str>, mirror: bool) -> ModSpec {
        ModSpec {
            name: "m".into(),
            defined_in: "pack.toml".into(),
            source,
            dir: "mods".into(),
            filename: None,
            side: atlas_proto::v1::Side::Both,
            optional: false,
            default_enabled: true,
            description: String::new(),
            mirror,
            declared: None,
            origin: origin.map(str::to_owned),
        }
    }

    fn url() -> ModSource {
        ModSource::Url {
            url: "https://example.invalid/a.jar".into(),
            hash: crate::packwiz::UpstreamHash::of(crate::packwiz::HashFormat::Sha256, b""),
        }
    }

    #[test]
    fn mirror_policy_per_source_and_entry_wins() {
        let p = AtlasSettings::parse(
            "[mirror]\ndefault = \"upstream\"\nmodrinth = \"mirror\"\n",
            "atlas.toml",
        )
        .expect("valid")
        .mirror;
        let modrinth = ModSource::Modrinth {
            project: "p".into(),
            version: "v".into(),
        };
        let curseforge = ModSource::CurseForge { project: 1, file: 2 };
        assert!(p.mirrors(&spec(modrinth.clone(), None, true)));
        assert!(p.mirrors(&spec(url(), Some("modrinth:AANobbMI/abc"), true)));
        assert!(!p.mirrors(&spec(url(), None, true)));
        assert!(!p.mirrors(&spec(curseforge, None, true)));
        assert!(!p.mirrors(&spec(url(), Some("curseforge:1/2"), true)));
        let mut own = spec(modrinth, None, false);
        p.apply(&mut own);
        assert!(!own.mirror, "an entry's own `mirror = false` wins");
        let mut all = spec(url(), None, true);
        MirrorPolicy::default().apply(&mut all);
        assert!(all.mirror, "default: everything is mirrored");
    }
}
