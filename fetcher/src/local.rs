//! The directories a run works in: the install directory and its `.atlas/`,
//! each opened once without following links ([`crate::safe_dir`]); every
//! state file, staging area and backup is then reached through these
//! handles, never by path again. A run that writes holds them through its
//! [`crate::lock::DirLock`]; read-only views (`check`, a dry run, `status`)
//! open what exists with [`Local::open`].

use crate::error::SyncError;
use crate::safe_dir::SafeDir;
use std::collections::BTreeMap;

use crate::state::{
    INSTALL_FILE, InstallState, STATE_DIR, STATE_FORMAT, StatePaths, TRUST_FILE, TrustState, parse_install,
    parse_trust,
};

/// Largest state file read (`install.json` of a pack of 100,000 files is
/// about 25 MB): a bigger one is refused rather than read into memory.
pub const STATE_FILE_CAP: u64 = 256 << 20;

/// The install directory and its state directory (see the module docs).
#[derive(Debug)]
pub struct Local {
    pub paths: StatePaths,
    dir: Option<SafeDir>,
    state: Option<SafeDir>,
}

impl Local {
    /// Opens what exists, for reading: a missing directory or `.atlas/` is
    /// `None` (nothing installed); a `.atlas` that is a link is refused.
    pub fn open(paths: &StatePaths) -> Result<Self, SyncError> {
        let dir = match SafeDir::open_ambient(&paths.dir) {
            Ok(d) => Some(d),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(atlas_proto::IoError::at("opening directory", &paths.dir)(e).into()),
        };
        let state = match &dir {
            Some(d) => d.open_dir(STATE_DIR)?,
            None => None,
        };
        Ok(Self {
            paths: paths.clone(),
            dir,
            state,
        })
    }

    /// Opens both, creating them if needed (refusing a `.atlas` link).
    pub fn create(paths: &StatePaths) -> Result<Self, SyncError> {
        let dir = SafeDir::create_ambient(&paths.dir)?;
        let state = dir.create_dir(STATE_DIR)?;
        Ok(Self {
            paths: paths.clone(),
            dir: Some(dir),
            state: Some(state),
        })
    }

    /// Handles already opened (by the lock, which creates them).
    pub(crate) fn from_parts(paths: &StatePaths, dir: SafeDir, state: Option<SafeDir>) -> Self {
        Self {
            paths: paths.clone(),
            dir: Some(dir),
            state,
        }
    }

    pub(crate) fn set_state(&mut self, state: SafeDir) {
        self.state = Some(state);
    }

    /// The install directory, if it exists.
    pub fn try_dir(&self) -> Option<&SafeDir> {
        self.dir.as_ref()
    }

    /// The state directory, if it exists.
    pub fn try_state(&self) -> Option<&SafeDir> {
        self.state.as_ref()
    }

    /// The install directory (always there once created).
    pub fn dir(&self) -> Result<&SafeDir, SyncError> {
        self.dir
            .as_ref()
            .ok_or_else(|| SyncError::Internal(format!("{} is not open", self.paths.dir.display())))
    }

    /// The state directory (always there once created).
    pub fn state(&self) -> Result<&SafeDir, SyncError> {
        self.state
            .as_ref()
            .ok_or_else(|| SyncError::Internal(format!("{} is not open", self.paths.state_dir.display())))
    }

    /// Reads the state file `name` (at most [`STATE_FILE_CAP`] bytes), if it exists.
    pub fn read_state(&self, name: &str) -> Result<Option<Vec<u8>>, SyncError> {
        match &self.state {
            Some(s) => s.read_capped(name, STATE_FILE_CAP),
            None => Ok(None),
        }
    }

    /// Loads `trust.json` through the state directory (never following a
    /// link); a missing file is an empty state.
    pub fn load_trust(&self) -> Result<TrustState, SyncError> {
        match self.read_state(TRUST_FILE)? {
            Some(b) => parse_trust(&self.paths.trust, &b),
            None => Ok(TrustState {
                format: STATE_FORMAT,
                channels: BTreeMap::new(),
                last_time: None,
            }),
        }
    }

    /// Loads `install.json` through the state directory; `None` if there is none.
    pub fn load_install(&self) -> Result<Option<InstallState>, SyncError> {
        self.read_state(INSTALL_FILE)?
            .map(|b| parse_install(&self.paths.install, &b))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_has_no_state() {
        let d = tempfile::tempdir().expect("tmp");
        let local = Local::open(&StatePaths::new(&d.path().join("none"))).expect("open");
        assert!(local.load_install().expect("missing ok").is_none());
        assert!(local.load_trust().expect("missing ok").channels.is_empty());
    }
}
