//! Prism Launcher and MultiMC instances: the component ids of
//! `mmc-pack.json` for Minecraft and each loader, shared by the builder
//! (which writes an instance archive's profile) and the fetcher (which
//! checks it before a launch and switches it when a build needs another
//! Minecraft or loader version).
//!
//! Sources: PrismLauncher `launcher/minecraft/PackProfile.cpp`
//! (`formatVersion` 1, components `{uid, version, important?}`) and the
//! uids the launchers' meta server publishes (`net.minecraft`,
//! `net.fabricmc.fabric-loader`, `org.quiltmc.quilt-loader`,
//! `net.minecraftforge`, `net.neoforged`), as packwiz-installer writes them
//! (`LauncherUtils.kt`).

use crate::v1::LoaderKind;

/// The component id of Minecraft itself.
pub const MINECRAFT_UID: &str = "net.minecraft";

/// Components the launcher adds on its own as dependencies and that pin a
/// Minecraft version (Fabric's intermediary mappings, Quilt's hashed ones):
/// when Minecraft changes, a stale one is dropped and the launcher re-adds it.
pub const MAPPING_UIDS: [&str; 2] = ["net.fabricmc.intermediary", "org.quiltmc.hashed"];

/// Every loader component id, so a switch of loader removes the old one.
pub const LOADER_UIDS: [&str; 4] = [
    "net.fabricmc.fabric-loader",
    "org.quiltmc.quilt-loader",
    "net.minecraftforge",
    "net.neoforged",
];

/// The component id of a loader; `None` for vanilla (no loader component).
pub fn loader_uid(kind: LoaderKind) -> Option<&'static str> {
    match kind {
        LoaderKind::Fabric => Some(LOADER_UIDS[0]),
        LoaderKind::Quilt => Some(LOADER_UIDS[1]),
        LoaderKind::Forge => Some(LOADER_UIDS[2]),
        LoaderKind::Neoforge => Some(LOADER_UIDS[3]),
        LoaderKind::Vanilla | LoaderKind::Unspecified => None,
    }
}

/// The loader version as the launchers name it: Forge's without the
/// Minecraft version around it (`1.20.1-47.3.0` → `47.3.0`), others as given.
pub fn loader_component_version(kind: LoaderKind, version: &str, minecraft: &str) -> String {
    if kind != LoaderKind::Forge || minecraft.is_empty() {
        return version.to_owned();
    }
    let v = version.strip_prefix(&format!("{minecraft}-")).unwrap_or(version);
    v.strip_suffix(&format!("-{minecraft}")).unwrap_or(v).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_and_versions() {
        assert_eq!(loader_uid(LoaderKind::Fabric), Some("net.fabricmc.fabric-loader"));
        assert_eq!(loader_uid(LoaderKind::Neoforge), Some("net.neoforged"));
        assert_eq!(loader_uid(LoaderKind::Vanilla), None);
        assert_eq!(
            loader_component_version(LoaderKind::Forge, "1.20.1-47.3.0", "1.20.1"),
            "47.3.0"
        );
        assert_eq!(
            loader_component_version(LoaderKind::Forge, "1.7.10-10.13.4.1614-1.7.10", "1.7.10"),
            "10.13.4.1614"
        );
        assert_eq!(
            loader_component_version(LoaderKind::Forge, "47.3.0", "1.20.1"),
            "47.3.0"
        );
        assert_eq!(
            loader_component_version(LoaderKind::Fabric, "0.16.9", "1.21.1"),
            "0.16.9"
        );
    }
}
