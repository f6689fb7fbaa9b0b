//! A container's states and which requests each allows: the lifecycle's
//! state machine, with dockerd's refusals (all 409 but one 304).

use serde::{Deserialize, Serialize};

use crate::engine::{EngineError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Running in Docker's sense: the process exists (paused included).
    pub fn is_running(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }
}

/// Docker's refusal of an operation that needs a running process.
pub fn not_running(id: &str) -> EngineError {
    EngineError::conflict(format!("Container {id} is not running"))
}

/// May a container in state `s` be started?
pub fn check_start(s: Status) -> Result<()> {
    match s {
        Status::Paused => Err(EngineError::conflict(
            "cannot start a paused container, try unpause instead",
        )),
        Status::Running | Status::Restarting => {
            Err(EngineError::NotModified("container already started".into()))
        }
        Status::Removing | Status::Dead => Err(EngineError::conflict(
            "container is marked for removal and cannot be started",
        )),
        Status::Created | Status::Exited => Ok(()),
    }
}

/// May container `id` in state `s` be paused (`pause`) or unpaused?
pub fn check_pause(s: Status, pause: bool, id: &str) -> Result<()> {
    match (pause, s) {
        // As dockerd, unpause only asks whether the container is paused.
        (false, s) if s != Status::Paused => Err(EngineError::conflict(format!(
            "Container {id} is not paused"
        ))),
        (_, s) if !s.is_running() => Err(EngineError::conflict(format!(
            "Container {id} is not running"
        ))),
        (true, Status::Paused) => Err(EngineError::conflict(format!(
            "Container {id} is already paused"
        ))),
        _ => Ok(()),
    }
}

/// May container `name` in state `s` be removed? `Ok(true)`: only after
/// its process is killed (`force`).
pub fn check_remove(s: Status, force: bool, name: &str) -> Result<bool> {
    if !force && s == Status::Restarting {
        return Err(EngineError::conflict(format!(
            "cannot remove container \"/{name}\": container is restarting: stop the container before removing or force remove"
        )));
    }
    if !s.is_running() || s == Status::Restarting {
        return Ok(false);
    }
    if force {
        return Ok(true);
    }
    // moby's words (25 and later).
    let why = if s == Status::Paused {
        "is paused and must be unpaused first"
    } else {
        "is running: stop the container before removing or force remove"
    };
    Err(EngineError::conflict(format!(
        "cannot remove container \"/{name}\": container {why}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Status; 7] = [
        Status::Created,
        Status::Running,
        Status::Paused,
        Status::Restarting,
        Status::Removing,
        Status::Exited,
        Status::Dead,
    ];

    fn code(r: Result<impl std::fmt::Debug>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(EngineError::NotModified(_)) => "304",
            Err(EngineError::Conflict(_)) => "409",
            Err(_) => "other",
        }
    }

    #[test]
    fn start_is_allowed_from_created_and_exited_only() {
        let got: Vec<&str> = ALL.iter().map(|s| code(check_start(*s))).collect();
        assert_eq!(got, ["ok", "304", "409", "304", "409", "ok", "409"]);
        assert!(check_start(Status::Paused)
            .unwrap_err()
            .to_string()
            .contains("try unpause instead"));
    }

    #[test]
    fn pause_and_unpause_need_the_right_state() {
        let pause: Vec<&str> = ALL
            .iter()
            .map(|s| code(check_pause(*s, true, "c")))
            .collect();
        assert_eq!(pause, ["409", "ok", "409", "ok", "409", "409", "409"]);
        let unpause: Vec<&str> = ALL
            .iter()
            .map(|s| code(check_pause(*s, false, "c")))
            .collect();
        assert_eq!(unpause, ["409", "409", "ok", "409", "409", "409", "409"]);
        let msg = |s, p| check_pause(s, p, "c").unwrap_err().to_string();
        assert_eq!(msg(Status::Paused, true), "Container c is already paused");
        assert_eq!(msg(Status::Exited, false), "Container c is not paused");
        assert_eq!(msg(Status::Exited, true), "Container c is not running");
    }

    #[test]
    fn remove_refuses_a_live_container_unless_forced() {
        let plain: Vec<String> = ALL
            .iter()
            .map(|s| {
                format!(
                    "{:?}",
                    check_remove(*s, false, "n").map_err(|e| e.to_string())
                )
            })
            .collect();
        assert!(plain[0] == "Ok(false)" && plain[5] == "Ok(false)" && plain[6] == "Ok(false)");
        assert!(plain[1].contains("is running: stop the container"));
        assert!(plain[2].contains("is paused and must be unpaused first"));
        assert!(plain[3].contains("container is restarting"));
        let forced: Vec<&str> = ALL
            .iter()
            .map(|s| match check_remove(*s, true, "n") {
                Ok(true) => "kill",
                Ok(false) => "remove",
                Err(_) => "refused",
            })
            .collect();
        assert_eq!(
            forced,
            ["remove", "kill", "kill", "remove", "remove", "remove", "remove"]
        );
    }
}
