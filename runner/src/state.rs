//! The supervisor's explicit state machine: the states a server can be in,
//! the steps of an update, and the only transitions allowed between them.

use std::fmt;

/// The steps of an update, in order ([`UpdateStep::RollingBack`] only when
/// the new build fails its health window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpdateStep {
    /// Warning players in game before the stop.
    Announcing,
    /// Stopping the server for the switch.
    Stopping,
    /// Archiving the world and the current install.
    BackingUp,
    /// Switching the files to the new build (staged beforehand).
    Applying,
    /// Starting the new build.
    Starting,
    /// Watching the new build: ready, pings, no crash.
    HealthCheck,
    /// Restoring the previous install and the world backup.
    RollingBack,
}

/// Where the server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Stopped,
    Starting,
    Running,
    Stopping,
    /// Exited unexpectedly; a restart is scheduled after a backoff.
    Crashed,
    Updating(UpdateStep),
    /// Gave up (crash loop, failed rollback, no usable Java...): waits for an operator.
    Failed,
}

impl UpdateStep {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Announcing => "announcing",
            Self::Stopping => "stopping",
            Self::BackingUp => "backing-up",
            Self::Applying => "applying",
            Self::Starting => "starting",
            Self::HealthCheck => "health-check",
            Self::RollingBack => "rolling-back",
        }
    }
}

impl State {
    /// The state's name as the CLI, metrics and events show it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Crashed => "crashed",
            Self::Updating(_) => "updating",
            Self::Failed => "failed",
        }
    }

    /// Whether a server process may be alive in this state.
    pub fn process_may_run(self) -> bool {
        !matches!(self, Self::Stopped | Self::Crashed | Self::Failed)
    }

    /// Whether `self -> to` is allowed.
    pub fn can_go_to(self, to: State) -> bool {
        use State::*;
        use UpdateStep as U;
        match (self, to) {
            (Stopped, Starting) | (Stopped, Updating(U::BackingUp)) => true,
            // An update of a running server starts by warning its players.
            (Running, Updating(U::Announcing)) => true,
            (Starting, Running | Stopping | Crashed) => true,
            (Running, Stopping | Crashed) => true,
            // A stop ends stopped, whether it took `stop`, SIGTERM or SIGKILL.
            (Stopping, Stopped) => true,
            (Crashed, Starting | Stopped | Failed) => true,
            (Failed, Starting | Stopped) | (Failed, Updating(U::BackingUp)) => true,
            (Updating(a), Updating(b)) => update_step_follows(a, b),
            // Where an update ends: serving the new (or restored) build, or
            // stopped when it began stopped, or failed when even the rollback failed.
            (Updating(U::HealthCheck | U::RollingBack), Running) => true,
            (Updating(U::Applying | U::RollingBack), Stopped) => true,
            // An update cut short by the daemon's shutdown where no server
            // process runs: stopped for it, or not started again.
            (Updating(U::Stopping | U::BackingUp | U::Starting), Stopped) => true,
            (Updating(_), Failed) => true,
            // An update that finds nothing to do before stopping anything.
            (Updating(U::Announcing), Running) => true,
            _ => false,
        }
    }
}

fn update_step_follows(a: UpdateStep, b: UpdateStep) -> bool {
    use UpdateStep::*;
    matches!(
        (a, b),
        (Announcing, Stopping)
            | (Stopping, BackingUp)
            | (BackingUp, Applying)
            | (Applying, Starting)
            | (Starting, HealthCheck)
            // Rolling back is possible from every step that changed something.
            | (Applying | Starting | HealthCheck, RollingBack)
            // After a restore, the previous build starts and is watched again.
            | (RollingBack, Starting)
    )
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Updating(step) => write!(f, "updating ({})", step.as_str()),
            other => f.write_str(other.name()),
        }
    }
}

/// A transition the machine refused: a bug in the supervisor, never an
/// operator's mistake (those are refused before any transition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid state transition {from} -> {to}")]
pub struct InvalidTransition {
    pub from: State,
    pub to: State,
}

/// The current state with its checked transitions.
#[derive(Debug, Clone)]
pub struct Machine {
    state: State,
    since: std::time::Instant,
}

impl Default for Machine {
    fn default() -> Self {
        Self::new()
    }
}

impl Machine {
    pub fn new() -> Self {
        Self {
            state: State::Stopped,
            since: std::time::Instant::now(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// When the current state was entered.
    pub fn since(&self) -> std::time::Instant {
        self.since
    }

    /// Moves to `to` if the table allows it.
    pub fn go(&mut self, to: State) -> Result<State, InvalidTransition> {
        if !self.state.can_go_to(to) {
            return Err(InvalidTransition { from: self.state, to });
        }
        let from = self.state;
        self.state = to;
        self.since = std::time::Instant::now();
        Ok(from)
    }
}

#[cfg(test)]
mod tests {
    use super::State::*;
    use super::UpdateStep as U;
    use super::*;

    const ALL: [State; 14] = [
        Stopped,
        Starting,
        Running,
        Stopping,
        Crashed,
        Failed,
        Updating(U::Announcing),
        Updating(U::Stopping),
        Updating(U::BackingUp),
        Updating(U::Applying),
        Updating(U::Starting),
        Updating(U::HealthCheck),
        Updating(U::RollingBack),
        Updating(U::Announcing),
    ];

    #[test]
    fn the_normal_life_of_a_server() {
        let mut m = Machine::new();
        for to in [
            Starting, Running, Stopping, Stopped, Starting, Running, Crashed, Starting, Running,
        ] {
            m.go(to).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn an_update_and_its_rollback() {
        let mut m = Machine::new();
        m.go(Starting).expect("start");
        m.go(Running).expect("ready");
        for step in [
            U::Announcing,
            U::Stopping,
            U::BackingUp,
            U::Applying,
            U::Starting,
            U::HealthCheck,
            U::RollingBack,
            U::Starting,
            U::HealthCheck,
        ] {
            m.go(Updating(step)).unwrap_or_else(|e| panic!("{e}"));
        }
        m.go(Running).expect("back to the old build");
    }

    #[test]
    fn an_update_of_a_stopped_server_ends_stopped() {
        let mut m = Machine::new();
        m.go(Updating(U::BackingUp)).expect("backup");
        m.go(Updating(U::Applying)).expect("apply");
        m.go(Stopped).expect("done");
    }

    #[test]
    fn an_update_cut_short_by_a_shutdown_ends_stopped() {
        for step in [
            U::Stopping,
            U::BackingUp,
            U::Applying,
            U::Starting,
            U::RollingBack,
        ] {
            assert!(Updating(step).can_go_to(Stopped), "{step:?}");
        }
        // While announcing the server still runs: back to running first.
        assert!(!Updating(U::Announcing).can_go_to(Stopped));
        assert!(Updating(U::Announcing).can_go_to(Running));
        // During the health window it runs too: the way out is rolling back.
        assert!(!Updating(U::HealthCheck).can_go_to(Stopped));
        assert!(Updating(U::HealthCheck).can_go_to(Updating(U::RollingBack)));
    }

    #[test]
    fn forbidden_transitions_are_refused_and_change_nothing() {
        let refused = [
            (Stopped, Running),
            (Stopped, Stopping),
            (Stopped, Crashed),
            (Running, Starting),
            (Running, Stopped),
            (Stopping, Running),
            (Stopping, Crashed),
            (Crashed, Running),
            (Failed, Running),
            (Updating(U::Announcing), Updating(U::Applying)),
            (Updating(U::BackingUp), Running),
            (Updating(U::HealthCheck), Updating(U::Announcing)),
            (Running, Updating(U::Applying)),
        ];
        for (from, to) in refused {
            assert!(!from.can_go_to(to), "{from} -> {to} must be refused");
            let mut m = Machine {
                state: from,
                since: std::time::Instant::now(),
            };
            assert_eq!(m.go(to), Err(InvalidTransition { from, to }));
            assert_eq!(m.state(), from);
        }
    }

    #[test]
    fn no_state_goes_to_itself_and_failed_is_reachable_from_trouble() {
        for s in ALL {
            assert!(!s.can_go_to(s), "{s} -> itself");
        }
        assert!(Crashed.can_go_to(Failed));
        for step in [
            U::Stopping,
            U::BackingUp,
            U::Applying,
            U::Starting,
            U::HealthCheck,
            U::RollingBack,
        ] {
            assert!(Updating(step).can_go_to(Failed), "{step:?}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(Updating(U::HealthCheck).to_string(), "updating (health-check)");
        assert_eq!(Updating(U::HealthCheck).name(), "updating");
        assert!(!Crashed.process_may_run());
        assert!(Stopping.process_may_run());
    }
}
