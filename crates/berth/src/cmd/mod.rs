//! One module per docker command group, and the `container`, `image` and
//! `system` groups' dispatch, which spans several of them. Command modules share
//! helpers through `common`, never through each other.

pub mod build;
pub mod common;
pub mod completion;
pub mod containers;
pub mod context;
pub mod cp;
pub mod images;
pub mod network;
pub mod ops;
pub mod plugin;
pub mod prune;
pub mod registry;
pub mod rootless;
pub mod run;
pub mod stats;
pub mod system;
pub mod ui;
pub mod volumes;

use crate::client::Conn;

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

#[derive(clap::Subcommand)]
pub enum ContainerCmd {
    /// List containers
    #[command(name = "ls", visible_aliases = ["ps", "list"])]
    Ls(containers::PsArgs),
    /// Create and run a new container from an image
    #[command(disable_help_flag = true)]
    Run(run::RunArgs),
    /// Create a new container
    #[command(disable_help_flag = true)]
    Create(run::CreateArgs),
    /// Start one or more stopped containers
    Start(run::StartArgs),
    /// Stop one or more running containers
    Stop(containers::StopArgs),
    /// Restart one or more containers
    Restart(containers::StopArgs),
    /// Kill one or more running containers
    Kill(containers::KillArgs),
    /// Remove one or more containers
    #[command(name = "rm", visible_aliases = ["remove"])]
    Rm(containers::RmArgs),
    /// Display detailed information on one or more containers
    Inspect(containers::InspectArgs),
    /// Fetch the logs of a container
    Logs(containers::LogsArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(run::AttachArgs),
    /// Execute a command in a running container
    Exec(run::ExecArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(containers::NamesArgs),
    /// Pause all processes within one or more containers
    Pause(containers::NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(containers::NamesArgs),
    /// Display the running processes of a container
    Top(containers::TopArgs),
    /// Rename a container
    Rename(containers::RenameArgs),
    /// Remove all stopped containers
    Prune(containers::PruneArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::StatsArgs),
    /// Update configuration of one or more containers
    Update(ops::UpdateArgs),
    /// Export a container's filesystem as a tar archive
    Export(ops::ExportArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(ops::DiffArgs),
    /// Create a new image from a container's changes
    Commit(ops::CommitArgs),
    /// List port mappings or a specific mapping for the container
    Port(ops::PortArgs),
}

pub async fn container(conn: &Conn, c: ContainerCmd) -> anyhow::Result<()> {
    match c {
        ContainerCmd::Ls(a) => containers::ps(conn, a).await,
        ContainerCmd::Run(a) => run::run(conn, a).await,
        ContainerCmd::Create(a) => run::create(conn, a).await,
        ContainerCmd::Start(a) => run::start(conn, a).await,
        ContainerCmd::Stop(a) => containers::stop(conn, a).await,
        ContainerCmd::Restart(a) => containers::restart(conn, a).await,
        ContainerCmd::Kill(a) => containers::kill(conn, a).await,
        ContainerCmd::Rm(a) => containers::rm(conn, a).await,
        ContainerCmd::Inspect(a) => containers::inspect(conn, a, Some("container")).await,
        ContainerCmd::Logs(a) => containers::logs(conn, a).await,
        ContainerCmd::Attach(a) => run::attach(conn, a).await,
        ContainerCmd::Exec(a) => run::exec(conn, a).await,
        ContainerCmd::Wait(a) => containers::wait(conn, a).await,
        ContainerCmd::Pause(a) => containers::pause(conn, a, true).await,
        ContainerCmd::Unpause(a) => containers::pause(conn, a, false).await,
        ContainerCmd::Top(a) => containers::top(conn, a).await,
        ContainerCmd::Rename(a) => containers::rename(conn, a).await,
        ContainerCmd::Prune(a) => containers::prune(conn, a).await,
        ContainerCmd::Stats(a) => stats::stats(conn, a).await,
        ContainerCmd::Update(a) => ops::update(conn, a).await,
        ContainerCmd::Export(a) => ops::export(conn, a).await,
        ContainerCmd::Diff(a) => ops::diff(conn, a).await,
        ContainerCmd::Commit(a) => ops::commit(conn, a).await,
        ContainerCmd::Port(a) => ops::port(conn, a).await,
    }
}

#[derive(clap::Subcommand)]
pub enum ImageCmd {
    /// List images
    #[command(name = "ls", visible_aliases = ["list"])]
    Ls(images::ImagesArgs),
    /// Display detailed information on one or more images
    Inspect(images::InspectArgs),
    /// Show the history of an image
    History(images::HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(images::TagArgs),
    /// Remove one or more images
    #[command(name = "rm", visible_aliases = ["remove"])]
    Rm(images::RmiArgs),
    /// Remove unused images
    Prune(images::PruneArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(images::ImportArgs),
    /// Load an image from a tar archive or STDIN
    Load(images::LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(images::SaveArgs),
    /// Download an image from a registry
    Pull(registry::PullArgs),
    /// Upload an image to a registry
    Push(registry::PushArgs),
}

pub async fn image(conn: &Conn, c: ImageCmd) -> anyhow::Result<()> {
    match c {
        ImageCmd::Ls(a) => images::images(conn, a).await,
        ImageCmd::Inspect(a) => images::inspect(conn, a).await,
        ImageCmd::History(a) => images::history(conn, a).await,
        ImageCmd::Tag(a) => images::tag(conn, a).await,
        ImageCmd::Rm(a) => images::rmi(conn, a).await,
        ImageCmd::Prune(a) => images::prune(conn, a).await,
        ImageCmd::Import(a) => images::import(conn, a).await,
        ImageCmd::Load(a) => images::load(conn, a).await,
        ImageCmd::Save(a) => images::save(conn, a).await,
        ImageCmd::Pull(a) => registry::pull(conn, a).await,
        ImageCmd::Push(a) => registry::push(conn, a).await,
    }
}

#[derive(clap::Subcommand)]
pub enum SystemCmd {
    /// Show berth disk usage
    Df(system::DfArgs),
    /// Display system-wide information
    Info(system::InfoArgs),
    /// Get real time events from the server
    Events(system::EventsArgs),
    /// Remove unused data
    Prune(prune::SystemPruneArgs),
}

pub async fn system(conn: &Conn, c: SystemCmd) -> anyhow::Result<()> {
    match c {
        SystemCmd::Df(a) => system::df(conn, a).await,
        SystemCmd::Info(a) => system::info(conn, a).await,
        SystemCmd::Events(a) => system::events(conn, a).await,
        SystemCmd::Prune(a) => prune::system(conn, a).await,
    }
}
