//! `traceless-sim`: run a scenario, or drive load against running nodes.

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use traceless_sim::scenario::Publication;
use traceless_sim::{load, run_with_sweep, RunOptions, Scenario};

/// Traceless simulator.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a scenario and writes report.json, report.html and SVG plots.
    Run {
        /// Scenario file (scenarios/<name>.toml).
        scenario: PathBuf,
        /// Output directory (default: target/traceless-sim/<scenario name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Override the population.
        #[arg(long)]
        population: Option<u32>,
        /// Override the app adoption rate.
        #[arg(long)]
        adoption: Option<f64>,
        /// Override the fraction of app users who check in at venues.
        #[arg(long)]
        checkin_adoption: Option<f64>,
        /// Override the number of initial infections.
        #[arg(long)]
        initial_infected: Option<u32>,
        /// Override the publication form (`keys` or `filter`).
        #[arg(long, value_parser = parse_publication)]
        publication: Option<Publication>,
        /// Override the gateway's k (`[network] min_keys`): pad every
        /// publication period to at least this many keys (nodes' default 140).
        #[arg(long)]
        min_keys: Option<u64>,
        /// Skip the scenario's [sweep] reruns.
        #[arg(long)]
        no_sweep: bool,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Chooses the risk operating point over several runs' report.json (one
    /// per seed) by the rule of SPEC.md §7.2, and prints each run's frontier.
    Calibrate {
        /// report.json files.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
    },
    /// Drives sealed uploads (through a relay) and downloads against running nodes
    /// (loopback only), or against a gateway and relay of its own.
    Load(load::LoadArgs),
    /// Real node processes in network namespaces joined by emulated links, under
    /// a fault timeline (see docs/net.md).
    Net(traceless_sim::net::cli::NetArgs),
    /// The `traceless-node` command line, for `net` where only the simulator is built.
    #[command(hide = true)]
    Node {
        /// The node's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            scenario,
            out,
            seed,
            population,
            adoption,
            checkin_adoption,
            initial_infected,
            publication,
            min_keys,
            no_sweep,
            quiet,
        } => {
            let mut s = match Scenario::load(&scenario) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Some(v) = seed {
                s.seed = v;
            }
            if let Some(v) = population {
                s.population = v;
            }
            if let Some(v) = adoption {
                s.app.adoption = v;
            }
            if let Some(v) = checkin_adoption {
                s.app.checkin_adoption = v;
            }
            if let Some(v) = initial_infected {
                s.epidemic.initial_infected = v;
            }
            if let Some(v) = publication {
                s.app.publication = v;
            }
            if let Some(v) = min_keys {
                s.network.min_keys = v;
            }
            if no_sweep {
                s.sweep = Default::default();
            }
            if let Err(e) = s.validate() {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            let out = out.unwrap_or_else(|| PathBuf::from("target/traceless-sim").join(&s.name));
            let opts = RunOptions {
                progress: !quiet && std::io::stderr().is_terminal(),
            };
            let work = std::env::temp_dir();
            match run_with_sweep(&s, &opts, &work) {
                Ok(report) => {
                    println!("{}", report.headline());
                    match report.write(&out) {
                        Ok(plots) => {
                            println!(
                                "wrote {}/report.json, report.html, {}",
                                out.display(),
                                plots.join(", ")
                            );
                            ExitCode::SUCCESS
                        }
                        Err(e) => {
                            eprintln!("error: writing the report: {e}");
                            ExitCode::FAILURE
                        }
                    }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Calibrate { reports } => match traceless_sim::calibration::report(&reports) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Net(args) => ExitCode::from(traceless_sim::net::cli::main(args)),
        Command::Node { args } => ExitCode::from(traceless_sim::net::cli::node_main(args)),
        Command::Load(args) => match load::run(&args) {
            Ok(r) => {
                println!("{r}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn parse_publication(s: &str) -> Result<Publication, String> {
    match s {
        "keys" => Ok(Publication::Keys),
        "filter" => Ok(Publication::Filter),
        _ => Err(format!(
            "{s:?} is not a publication form: use keys or filter"
        )),
    }
}
