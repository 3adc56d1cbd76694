//! The `traceless-sim net …` and `traceless-sim node …` subcommands.

use std::path::PathBuf;

use super::cluster::NodeProgram;
use super::scenario::NetScenario;
use super::soak;
use super::{run, NetOptions};

/// `traceless-sim net`.
#[derive(clap::Args, Debug)]
pub struct NetArgs {
    /// What to run.
    #[command(subcommand)]
    pub command: NetCommand,
    /// Loopback even when namespaces would work.
    #[arg(long, global = true)]
    pub loopback: bool,
    /// The `traceless-node` binary (default: next to this executable, else
    /// this executable's `node` subcommand).
    #[arg(long, global = true)]
    pub node_bin: Option<PathBuf>,
    /// Output directory (default: target/traceless-sim/<scenario name>).
    #[arg(long, global = true)]
    pub out: Option<PathBuf>,
}

/// Network runs.
#[derive(clap::Subcommand, Debug)]
pub enum NetCommand {
    /// Runs a scenario (scenarios/net-*.toml) and writes its report.
    Run {
        /// Scenario file.
        scenario: PathBuf,
        /// Override the number of nodes.
        #[arg(long)]
        nodes: Option<usize>,
    },
    /// Steady uploads and downloads with periodic faults for a bounded time;
    /// reports memory and descriptor growth per node.
    Soak(soak::SoakArgs),
}

/// Runs `traceless-sim net …`; returns the process exit code.
pub fn main(args: NetArgs) -> u8 {
    let sim = std::env::current_exe().unwrap_or_default();
    let program = match args.node_bin {
        Some(p) => NodeProgram {
            program: p,
            args: Vec::new(),
        },
        None => NodeProgram::find(&sim),
    };
    let opts = NetOptions {
        force_loopback: args.loopback,
        program,
    };
    let work = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let (name, result) = match args.command {
        NetCommand::Run { scenario, nodes } => {
            let mut s = match NetScenario::load(&scenario) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 2;
                }
            };
            if let Some(n) = nodes {
                s.nodes = n;
            }
            (
                s.name.clone(),
                run(&s, &opts, work.path()).map(|r| (r, None)),
            )
        }
        NetCommand::Soak(a) => (
            "net-soak".to_string(),
            soak::run_soak(&a, &opts, work.path()).map(|(r, g)| (r, Some(g))),
        ),
    };
    match result {
        Ok((report, growth)) => {
            println!("{}", report.headline());
            if let Some(g) = growth {
                println!(
                    "soak growth after warm-up: RSS +{} KiB (largest of any node), descriptors +{}",
                    g.max_rss_growth_kib, g.max_fd_growth
                );
            }
            let out = args
                .out
                .unwrap_or_else(|| PathBuf::from("target/traceless-sim").join(&name));
            match report.write(&out) {
                Ok(plots) => {
                    println!(
                        "wrote {}/report.json, report.html, {}",
                        out.display(),
                        plots.join(", ")
                    );
                    0
                }
                Err(e) => {
                    eprintln!("error: writing the report: {e}");
                    1
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// `traceless-sim node …`: the node's own command line, exactly as the
/// `traceless-node` binary runs it (for machines where only the simulator
/// is built).
pub fn node_main(args: Vec<String>) -> u8 {
    use clap::Parser;
    let cli = traceless_node::cli::Cli::parse_from(
        std::iter::once("traceless-node".to_string()).chain(args),
    );
    traceless_node::logging::init(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("traceless-node: {e}");
            return 1;
        }
    };
    match rt.block_on(traceless_node::cli::main(cli)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("traceless-node: {e}");
            1
        }
    }
}
