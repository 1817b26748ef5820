//! `asyncmdd`: the asyncmd daemon. Parses its command line and runs [`asyncmdd::daemon`].

use std::path::PathBuf;
use std::process::ExitCode;

use asyncmd_proto::endpoint;
use asyncmdd::daemon::{self, Options};
use asyncmdd::journal::parse_size;
use clap::Parser;

/// Boots services from unit files, supervises them, keeps their logs in a RAM ring journal and
/// answers asyncmctl and asyncmjournal on a local socket.
#[derive(Parser)]
#[command(name = "asyncmdd", version)]
struct Cli {
    /// Directory of unit files (NAME.service).
    #[arg(long, default_value = "units", value_name = "DIR")]
    units: PathBuf,
    /// services.config to use [default: services.config in the units directory].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Control socket path [default: $ASYNCMD_SOCKET, else /run/asyncmd/asyncmdd.sock for root,
    /// else $XDG_RUNTIME_DIR/asyncmd/asyncmdd.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Journal byte budget (K, M, G suffixes); the ring never grows past it.
    #[arg(long, default_value = "1M", value_name = "SIZE", value_parser = parse_size)]
    journal_size: usize,
    /// Host name shown in journal lines [default: the system's].
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// When to colour the boot report (stdout) and the daemon's diagnostics (stderr): auto (on
    /// a terminal; never with NO_COLOR, always with CLICOLOR_FORCE, not with TERM=dumb),
    /// always or never.
    #[arg(long, value_name = "WHEN", default_value = "auto",
          value_parser = str::parse::<asyncmd_proto::text::ColorWhen>)]
    color: asyncmd_proto::text::ColorWhen,
    /// The same as --color never.
    #[arg(long)]
    no_color: bool,
    /// How many units may be starting at once: from its spawn until it runs (is ready, for
    /// `notify`; has exited, for `oneshot`). The rest wait their turn, so a boot of thousands
    /// of units never holds more processes and pipes than this in flight.
    #[arg(long, default_value_t = asyncmdd::driver::DEFAULT_SPAWN_LIMIT, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    spawn_limit: u32,
    /// The cgroup v2 directory to put each unit's processes in, a cgroup per unit: `auto` takes
    /// the daemon's own cgroup when it is delegated to it (systemd's Delegate=yes, or PID 1 of
    /// a container); `off` tracks processes by run tags and process groups only.
    #[arg(long, default_value = "auto", value_name = "auto|off|DIR")]
    cgroup: asyncmdd::cgroup::Choice,
    /// Print the boot plan (order, and what would not start and why), start nothing, and exit:
    /// 0 when every enabled unit would start, 1 otherwise.
    #[arg(long)]
    plan: bool,
    /// Write this program's man page (asyncmdd.8) into DIR.
    #[arg(long, hide = true, value_name = "DIR")]
    man: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(dir) = &cli.man {
        let man = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).section("8");
        return match man.generate_to(dir) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("asyncmdd: {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ASYNCMD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(asyncmd_proto::text::color_for(
            if cli.no_color {
                asyncmd_proto::text::ColorWhen::Never
            } else {
                cli.color
            },
            &std::io::stderr(),
        ))
        .init();
    let opts = Options {
        socket: endpoint::socket_path(cli.socket.as_deref()),
        hostname: cli.hostname.unwrap_or_else(|| {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "localhost".into())
        }),
        color: asyncmd_proto::text::color_enabled(cli.color, cli.no_color),
        units: cli.units,
        config: cli.config,
        journal_size: cli.journal_size,
        spawn_limit: cli.spawn_limit as usize,
        cgroup: cli.cgroup,
    };
    if cli.plan {
        return match daemon::print_plan(&opts) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("asyncmdd: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    // I/O readiness is looked at every 8 task polls rather than tokio's 61: heavy requests
    // yield between slices of work, and a new request must be seen between them, not after
    // dozens.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .event_interval(8)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("asyncmdd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(daemon::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("asyncmdd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
