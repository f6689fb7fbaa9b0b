//! berth: a docker-compatible CLI that sends every command to the daemon over
//! the Engine API (so it works against berthd and dockerd alike).

mod client;
mod cliplugins;
mod cmd;
mod creds;
mod ctxstore;
mod format;
mod jsonstream;
mod opts;
mod raw;
mod stream;
mod term;

use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches, Subcommand};

#[derive(clap::Parser)]
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
    System(cmd::SystemCmd),
    /// Build an image from a Dockerfile
    Build(cmd::build::BuildArgs),
    /// List images
    Images(cmd::images::ImagesArgs),
    /// Manage images
    #[command(subcommand)]
    Image(cmd::ImageCmd),
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
    /// Download an image from a registry
    Pull(cmd::registry::PullArgs),
    /// Upload an image to a registry
    Push(cmd::registry::PushArgs),
    /// Search Docker Hub (or the registry the term names) for images
    Search(cmd::registry::SearchArgs),
    /// Authenticate to a registry
    Login(cmd::registry::LoginArgs),
    /// Log out from a registry
    Logout(cmd::registry::LogoutArgs),
    /// Return low-level information on berth objects
    Inspect(cmd::containers::InspectArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(cmd::ContainerCmd),
    /// Create and run a new container from an image
    #[command(disable_help_flag = true)]
    Run(cmd::run::RunArgs),
    /// Create a new container
    #[command(disable_help_flag = true)]
    Create(cmd::run::CreateArgs),
    /// Start one or more stopped containers
    Start(cmd::run::StartArgs),
    /// Stop one or more running containers
    Stop(cmd::containers::StopArgs),
    /// Restart one or more containers
    Restart(cmd::containers::StopArgs),
    /// Kill one or more running containers
    Kill(cmd::containers::KillArgs),
    /// Remove one or more containers
    Rm(cmd::containers::RmArgs),
    /// List containers
    Ps(cmd::containers::PsArgs),
    /// Fetch the logs of a container
    Logs(cmd::containers::LogsArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(cmd::run::AttachArgs),
    /// Execute a command in a running container
    Exec(cmd::run::ExecArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(cmd::containers::NamesArgs),
    /// Pause all processes within one or more containers
    Pause(cmd::containers::NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(cmd::containers::NamesArgs),
    /// Display the running processes of a container
    Top(cmd::containers::TopArgs),
    /// Rename a container
    Rename(cmd::containers::RenameArgs),
    /// Manage volumes
    #[command(subcommand)]
    Volume(cmd::volumes::VolumeCmd),
    /// Copy files/folders between a container and the local filesystem
    Cp(cmd::cp::CpArgs),
    /// Manage networks
    #[command(subcommand)]
    Network(cmd::network::NetworkCmd),
    /// Manage plugins
    #[command(subcommand)]
    Plugin(cmd::plugin::PluginCmd),
    /// List port mappings or a specific mapping for the container
    Port(cmd::ops::PortArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(cmd::stats::StatsArgs),
    /// Update configuration of one or more containers
    Update(cmd::ops::UpdateArgs),
    /// Export a container's filesystem as a tar archive
    Export(cmd::ops::ExportArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(cmd::ops::DiffArgs),
    /// Create a new image from a container's changes
    Commit(cmd::ops::CommitArgs),
    /// Check or set up this user for rootless mode
    #[command(subcommand)]
    Rootless(cmd::rootless::RootlessCmd),
    /// Manage contexts
    #[command(subcommand)]
    Context(cmd::context::ContextCmd),
    /// Manage builds
    #[command(subcommand)]
    Builder(cmd::prune::BuilderCmd),
    /// Serve the web dashboard (prints its URL, with a one-time token)
    Ui(cmd::ui::UiArgs),
    /// Generate the autocompletion script for the specified shell
    Completion(cmd::completion::CompletionArgs),
    /// Write a man page for every command into a directory
    #[command(name = "__man", hide = true)]
    Man(cmd::completion::ManArgs),
    /// A docker CLI plugin (`docker-<name>`)
    #[command(external_subcommand)]
    External(Vec<OsString>),
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
        Command::System(c) => cmd::system(&cli.conn, c).await,
        Command::Build(a) => cmd::build::build(&cli.conn, a).await,
        Command::Images(a) => cmd::images::images(&cli.conn, a).await,
        Command::Image(c) => cmd::image(&cli.conn, c).await,
        Command::History(a) => cmd::images::history(&cli.conn, a).await,
        Command::Tag(a) => cmd::images::tag(&cli.conn, a).await,
        Command::Rmi(a) => cmd::images::rmi(&cli.conn, a).await,
        Command::Import(a) => cmd::images::import(&cli.conn, a).await,
        Command::Load(a) => cmd::images::load(&cli.conn, a).await,
        Command::Save(a) => cmd::images::save(&cli.conn, a).await,
        Command::Pull(a) => cmd::registry::pull(&cli.conn, a).await,
        Command::Push(a) => cmd::registry::push(&cli.conn, a).await,
        Command::Search(a) => cmd::registry::search(&cli.conn, a).await,
        Command::Login(a) => cmd::registry::login(&cli.conn, a).await,
        Command::Logout(a) => cmd::registry::logout(&cli.conn, a).await,
        Command::Inspect(a) => cmd::containers::inspect(&cli.conn, a, None).await,
        Command::Container(c) => cmd::container(&cli.conn, c).await,
        Command::Run(a) => cmd::run::run(&cli.conn, a).await,
        Command::Create(a) => cmd::run::create(&cli.conn, a).await,
        Command::Start(a) => cmd::run::start(&cli.conn, a).await,
        Command::Stop(a) => cmd::containers::stop(&cli.conn, a).await,
        Command::Restart(a) => cmd::containers::restart(&cli.conn, a).await,
        Command::Kill(a) => cmd::containers::kill(&cli.conn, a).await,
        Command::Rm(a) => cmd::containers::rm(&cli.conn, a).await,
        Command::Ps(a) => cmd::containers::ps(&cli.conn, a).await,
        Command::Logs(a) => cmd::containers::logs(&cli.conn, a).await,
        Command::Attach(a) => cmd::run::attach(&cli.conn, a).await,
        Command::Exec(a) => cmd::run::exec(&cli.conn, a).await,
        Command::Wait(a) => cmd::containers::wait(&cli.conn, a).await,
        Command::Pause(a) => cmd::containers::pause(&cli.conn, a, true).await,
        Command::Unpause(a) => cmd::containers::pause(&cli.conn, a, false).await,
        Command::Top(a) => cmd::containers::top(&cli.conn, a).await,
        Command::Rename(a) => cmd::containers::rename(&cli.conn, a).await,
        Command::Volume(c) => cmd::volumes::volume(&cli.conn, c).await,
        Command::Cp(a) => cmd::cp::cp(&cli.conn, a).await,
        Command::Network(c) => cmd::network::network(&cli.conn, c).await,
        Command::Plugin(c) => cmd::plugin::plugin(&cli.conn, c).await,
        Command::Port(a) => cmd::ops::port(&cli.conn, a).await,
        Command::Stats(a) => cmd::stats::stats(&cli.conn, a).await,
        Command::Update(a) => cmd::ops::update(&cli.conn, a).await,
        Command::Export(a) => cmd::ops::export(&cli.conn, a).await,
        Command::Diff(a) => cmd::ops::diff(&cli.conn, a).await,
        Command::Commit(a) => cmd::ops::commit(&cli.conn, a).await,
        Command::Rootless(c) => cmd::rootless::rootless(c),
        Command::Builder(c) => cmd::prune::builder(&cli.conn, c).await,
        Command::Ui(a) => cmd::ui::ui(&cli.conn, a).await,
        // Run before the runtime starts (`local`).
        Command::Context(_) | Command::Completion(_) | Command::Man(_) | Command::External(_) => {
            Ok(())
        }
    }
}

/// Commands that need no daemon: contexts, completions, man pages and CLI
/// plugins, done here; any other comes back.
enum Local {
    Done(anyhow::Result<i32>),
    Daemon(Box<Cli>),
}

fn local(mut cli: Cli) -> Local {
    let done = |r: anyhow::Result<()>| Local::Done(r.map(|()| 0));
    match cli.cmd {
        Command::Context(c) => done(cmd::context::context(&cli.conn, c)),
        Command::Completion(a) => done(cmd::completion::completion(Cli::command(), a)),
        Command::Man(a) => done(cmd::completion::man(Cli::command(), a)),
        Command::External(args) => Local::Done(plugin(&mut cli.conn, &args)),
        cmd => Local::Daemon(Box::new(Cli {
            conn: cli.conn,
            cmd,
        })),
    }
}

/// `berth <name> …`: the CLI plugin `docker-<name>`.
fn plugin(conn: &mut client::Conn, args: &[OsString]) -> anyhow::Result<i32> {
    let name = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let host_given = conn.host.is_some();
    let resolved = ctxstore::resolve(conn)?;
    let Some(path) = cliplugins::find(&name) else {
        anyhow::bail!(
            "berth: unknown command: berth {name}\n\nRun 'berth --help' for more information"
        );
    };
    // The docker CLI's default socket is not berth's: a plugin on the
    // default context is told where berthd is.
    let host = (resolved.name == ctxstore::DEFAULT
        && !host_given
        && std::env::var("DOCKER_HOST").map_or(true, |h| h.is_empty()))
    .then_some(client::DEFAULT_HOST);
    cliplugins::run(&path, host)
}

/// `berth`, `berth -h` and `berth --help` list the installed CLI plugins
/// (the only times their metadata is asked for up front).
fn root_help() -> bool {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    args.is_empty() || (args.len() == 1 && (args[0] == "--help" || args[0] == "-h"))
}

fn main() {
    // A CLI writing into `| head` should end quietly, as Go programs do.
    // SAFETY: called before any other thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let mut command = Cli::command();
    if root_help() {
        if let Some(text) = cliplugins::help_text() {
            command = command.after_help(text);
        }
    }
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let mut cli = match local(cli) {
        Local::Done(r) => finish(r),
        Local::Daemon(cli) => *cli,
    };
    if !matches!(cli.cmd, Command::Rootless(_)) {
        if let Err(e) = ctxstore::resolve(&mut cli.conn) {
            finish(Err(e));
        }
    }
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
    finish(rt.block_on(run(cli)).map(|()| 0));
}

/// Exits with the status of a command's result, printing its error.
fn finish(r: anyhow::Result<i32>) -> ! {
    let code = match r {
        Ok(code) => code,
        Err(e) => match e.downcast_ref::<ExitCode>() {
            Some(code) => code.0,
            None => {
                eprintln!("{}", cmd::error_text(&e));
                1
            }
        },
    };
    // Exit without dropping the runtime: a thread blocked reading the
    // terminal (attach, exec -i) can't be cancelled and would hold it up.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    std::process::exit(code);
}
