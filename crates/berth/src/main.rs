//! berth: a docker-compatible CLI that sends every command to the daemon over
//! the Engine API (so it works against berthd and dockerd alike).

mod client;
mod cmd;
mod format;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A self-sufficient runtime for containers",
    disable_help_subcommand = true
)]
struct Cli {
    #[command(flatten)]
    conn: client::Conn,
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the berth version information
    Version(cmd::system::VersionArgs),
    /// Display system-wide information
    Info(cmd::system::InfoArgs),
    /// Get real time events from the server
    Events(cmd::system::EventsArgs),
    /// Manage berth
    #[command(subcommand)]
    System(cmd::system::SystemCmd),
    /// List images
    Images(cmd::images::ImagesArgs),
    /// Manage images
    #[command(subcommand)]
    Image(cmd::images::ImageCmd),
    /// Show the history of an image
    History(cmd::images::HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(cmd::images::TagArgs),
    /// Remove one or more images
    Rmi(cmd::images::RmiArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(cmd::images::ImportArgs),
    /// Load an image from a tar archive or STDIN
    Load(cmd::images::LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(cmd::images::SaveArgs),
    /// Return low-level information on berth objects
    Inspect(cmd::images::InspectArgs),
    /// Manage volumes
    #[command(subcommand)]
    Volume(cmd::volumes::VolumeCmd),
    /// Copy files/folders between a container and the local filesystem
    Cp(cmd::cp::CpArgs),
}

/// A failure that carries the exit status to use (e.g. a container's).
#[derive(Debug)]
pub struct ExitCode(pub i32);
impl std::fmt::Display for ExitCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}
impl std::error::Error for ExitCode {}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Command::Version(a) => cmd::system::version(&cli.conn, a).await,
        Command::Info(a) => cmd::system::info(&cli.conn, a).await,
        Command::Events(a) => cmd::system::events(&cli.conn, a).await,
        Command::System(c) => cmd::system::system(&cli.conn, c).await,
        Command::Images(a) => cmd::images::images(&cli.conn, a).await,
        Command::Image(c) => cmd::images::image(&cli.conn, c).await,
        Command::History(a) => cmd::images::history(&cli.conn, a).await,
        Command::Tag(a) => cmd::images::tag(&cli.conn, a).await,
        Command::Rmi(a) => cmd::images::rmi(&cli.conn, a).await,
        Command::Import(a) => cmd::images::import(&cli.conn, a).await,
        Command::Load(a) => cmd::images::load(&cli.conn, a).await,
        Command::Save(a) => cmd::images::save(&cli.conn, a).await,
        Command::Inspect(a) => cmd::images::inspect_any(&cli.conn, a).await,
        Command::Volume(c) => cmd::volumes::volume(&cli.conn, c).await,
        Command::Cp(a) => cmd::cp::cp(&cli.conn, a).await,
    }
}

fn main() {
    // A CLI writing into `| head` should end quietly, as Go programs do.
    // SAFETY: called before any other thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(cli)) {
        if let Some(code) = e.downcast_ref::<ExitCode>() {
            std::process::exit(code.0);
        }
        eprintln!("{}", cmd::error_text(&e));
        std::process::exit(1);
    }
}
