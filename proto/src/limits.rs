//! Every size cap on input that comes from outside, in one place.
//!
//! Like tough's `Limits`, one value describes how much of each kind of
//! untrusted input a reader accepts before refusing it, so the builder, the
//! fetcher and the runner agree (a manifest the builder writes is one the
//! fetcher reads). Readers take a `&Limits` where a caller may want other
//! bounds (tests, embedding launchers) and use [`Limits::DEFAULT`] otherwise.
//!
//! Protocol facts that are not tunable (RCON's 1446-byte command limit, the
//! 255-byte path segment of every filesystem Atlas supports) stay beside the
//! protocol code; this type holds the caps Atlas chose.

/// Size caps on untrusted input. Field docs say who reads what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    // --- store objects (docs/FORMAT.md) ---
    /// A signed channel pointer (DSSE envelope), in bytes.
    pub pointer_bytes: u64,
    /// A signed keyset (DSSE envelope), in bytes.
    pub keyset_bytes: u64,
    /// Keys per keyset role.
    pub keyset_role_keys: usize,
    /// Revoked key ids in one keyset.
    pub keyset_revoked: usize,
    /// A stored (zstd-compressed) manifest, in bytes, before the pointer's
    /// declared length narrows it.
    pub manifest_stored_bytes: u64,
    /// A decoded manifest: decompressed bytes and file entries.
    pub manifest: ManifestLimits,
    /// Largest zstd window a manifest may use, as log2 bytes (16 MiB). The
    /// builder's fixed level uses at most 8 MiB; without a bound a 10-byte frame header
    /// could make a decoder reserve 2 GiB before the output cap applies.
    pub manifest_window_log: u32,
    /// An install path, in bytes.
    pub path_bytes: usize,
    /// An existing export object the builder reads back from a store
    /// (a packwiz `pack.toml`/`index.toml`, a page), in bytes.
    pub export_object_bytes: u64,
    /// A player tool binary (`atlas-fetcher` for one platform) a pointer
    /// pins, in bytes: what the builder uploads and the fetcher downloads.
    pub tool_binary_bytes: u64,
    /// The instance archive's bootstrap jar, in bytes.
    pub bootstrap_jar_bytes: u64,

    // --- creators' files and foreign formats ---
    /// One file read from a pack repository, in bytes.
    pub repo_file_bytes: u64,
    /// A `.mrpack`'s `modrinth.index.json`, in bytes.
    pub mrpack_index_bytes: u64,
    /// Entries in one `.mrpack` (files plus overrides).
    pub mrpack_entries: usize,
    /// One entry of a `.mrpack`, decompressed, in bytes.
    pub mrpack_entry_bytes: u64,
    /// All entries of a `.mrpack`, decompressed, in bytes.
    pub mrpack_total_bytes: u64,
    /// One mod file the builder downloads (Modrinth, CurseForge, a URL), in bytes.
    pub mod_file_bytes: u64,

    // --- hosts' configuration ---
    /// A fetcher or runner configuration file, in bytes.
    pub config_bytes: u64,
    /// A `server.properties` file, in bytes.
    pub properties_bytes: u64,

    // --- server provisioning (Mojang and loader metadata and installers) ---
    /// A metadata document (version manifest, loader version list), in bytes.
    pub provision_metadata_bytes: u64,
    /// A server jar or installer, in bytes.
    pub provision_jar_bytes: u64,
    /// A loader's server launcher, in bytes.
    pub provision_launcher_bytes: u64,
    /// The launch description a provisioned server keeps (`.atlas/launch.json`), in bytes.
    pub launch_bytes: u64,

    // --- the runner's peers ---
    /// One control-socket frame, in bytes.
    pub ipc_frame_bytes: usize,
    /// Open control-socket connections.
    pub ipc_connections: usize,
    /// Requests in flight on the control socket.
    pub ipc_in_flight: usize,
    /// One console line of the server's output, in bytes.
    pub console_line_bytes: usize,
    /// One RCON packet, in bytes.
    pub rcon_packet_bytes: usize,
    /// One RCON response, all fragments together, in bytes.
    pub rcon_response_bytes: usize,
    /// One Server List Ping status packet, in bytes.
    pub slp_status_bytes: usize,
}

impl Limits {
    /// The caps every Atlas binary uses unless told otherwise.
    pub const DEFAULT: Limits = Limits {
        pointer_bytes: 64 * 1024,
        keyset_bytes: 64 * 1024,
        keyset_role_keys: 32,
        keyset_revoked: 1024,
        manifest_stored_bytes: 64 * 1024 * 1024,
        manifest: ManifestLimits::DEFAULT,
        manifest_window_log: 24,
        path_bytes: 1024,
        export_object_bytes: 4 * 1024 * 1024,
        tool_binary_bytes: 256 * 1024 * 1024,
        bootstrap_jar_bytes: 4 * 1024 * 1024,

        repo_file_bytes: 1 << 30,
        mrpack_index_bytes: 16 * 1024 * 1024,
        mrpack_entries: 100_000,
        mrpack_entry_bytes: 1 << 30,
        mrpack_total_bytes: 8 << 30,
        mod_file_bytes: 1 << 30,

        config_bytes: 1024 * 1024,
        properties_bytes: 256 * 1024,

        provision_metadata_bytes: 16 * 1024 * 1024,
        provision_jar_bytes: 512 * 1024 * 1024,
        provision_launcher_bytes: 64 * 1024 * 1024,
        launch_bytes: 64 * 1024,

        ipc_frame_bytes: 1 << 20,
        ipc_connections: 64,
        ipc_in_flight: 32,
        console_line_bytes: 16 * 1024,
        rcon_packet_bytes: 64 * 1024,
        rcon_response_bytes: 4 * 1024 * 1024,
        slp_status_bytes: 256 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Caps applied when decoding a manifest that came from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestLimits {
    /// Largest decompressed protobuf, in bytes.
    pub max_decoded_bytes: u64,
    /// Most file entries.
    pub max_files: usize,
}

impl ManifestLimits {
    /// The caps used unless a caller chooses others (see [`Limits`]).
    pub const DEFAULT: ManifestLimits = ManifestLimits {
        max_decoded_bytes: 64 * 1024 * 1024,
        max_files: 200_000,
    };
}

impl Default for ManifestLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_that_fits_its_decoded_cap_fits_its_stored_cap() {
        // zstd never expands incompressible data by more than a few bytes per
        // block, so a stored cap at least the decoded cap admits every
        // manifest the decoder would accept.
        let l = Limits::DEFAULT;
        assert!(l.manifest_stored_bytes >= l.manifest.max_decoded_bytes);
        assert!(l.mrpack_entry_bytes <= l.mrpack_total_bytes);
        assert!(l.path_bytes >= 255);
    }
}
