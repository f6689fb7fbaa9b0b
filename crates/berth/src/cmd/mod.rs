//! One module per docker command group.

pub mod build;
pub mod containers;
pub mod cp;
pub mod images;
pub mod network;
pub mod ops;
pub mod opts;
pub mod registry;
pub mod run;
pub mod stats;
pub mod system;
pub mod volumes;

/// Daemon errors print as the docker CLI prints them.
pub fn error_text(e: &anyhow::Error) -> String {
    for cause in e.chain() {
        if let Some(bollard::errors::Error::DockerResponseServerError { message, .. }) =
            cause.downcast_ref::<bollard::errors::Error>()
        {
            return format!("Error response from daemon: {message}");
        }
    }
    format!("{e:#}")
}
