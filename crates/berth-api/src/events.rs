//! The `/events` wire shape. The stubs' `EventMessage` lacks the legacy
//! `status`/`id`/`from` fields that API < 1.52 still sends.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The object an event is about, as moby's `events.Actor`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Actor {
    /// `ID`: the object's ID (or name, for objects without one).
    #[serde(rename = "ID")]
    pub id: String,
    /// `Attributes`: details such as `name`, `image` and the object's labels.
    #[serde(rename = "Attributes")]
    pub attributes: HashMap<String, String>,
}

/// One `/events` message, as moby's `events.Message`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Event {
    /// Legacy `status`: the action, on container and image events (API < 1.52).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Legacy `id`: the actor's ID, on container and image events (API < 1.52).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Legacy `from`: the image, on container events (API < 1.52).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// `Type`: the kind of object (`container`, `image`, `network`, `volume`, …).
    #[serde(rename = "Type")]
    pub typ: String,
    /// `Action`: what happened (`create`, `start`, `die`, `pull`, …).
    #[serde(rename = "Action")]
    pub action: String,
    /// `Actor`: the object the event is about.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// `scope`: `local` (this engine) or `swarm`.
    pub scope: String,
    /// `time`: when it happened, in Unix seconds.
    pub time: i64,
    /// `timeNano`: when it happened, in Unix nanoseconds.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}
