//! The command line: `run`, `id`, `init`, authority keys, upload codes,
//! `retention run`, benchmarks, venue posters.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use traceless_protocol::{AuthorityKey, TokenKey};

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Role, EXAMPLE};
use crate::{keys, upload_codes};

/// A Traceless relay node.
#[derive(Parser, Debug)]
#[command(name = "traceless-node", version, about)]
pub struct Cli {
    /// Log lines as text or as one JSON object per line (filter: `RUST_LOG`).
    #[arg(long, global = true, value_enum, default_value_t)]
    pub log_format: crate::logging::LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the node (embedded defaults without --config: ./data, HTTP 127.0.0.1:8080).
    Run {
        /// Configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Start the node's clock at this unix time instead of the system's
        /// (it then advances in real time). For tests; never in production.
        #[arg(long, hide = true)]
        start_time: Option<u64>,
    },
    /// Print this node's libp2p peer id and the addresses peers dial it at
    /// (`p2p.listen` with `/p2p/<id>`), without starting it. Creates the identity
    /// key in the data dir if there is none yet (as `run` would).
    Id {
        /// Configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Retention now (the node also runs it every `retention.interval_secs`).
    Retention {
        /// What to do.
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Write a commented example configuration.
    Init {
        /// Where to write it.
        #[arg(long, default_value = "node.toml")]
        out: PathBuf,
    },
    /// Manage a health authority's batch-signing keys.
    Authority {
        /// What to do.
        #[command(subcommand)]
        command: AuthorityCommand,
    },
    /// Manage single-use upload codes (gateways).
    Codes {
        /// What to do.
        #[command(subcommand)]
        command: CodesCommand,
    },
    /// Health-authority staff accounts of a gateway (SPEC.md §8.4).
    Operator {
        /// What to do.
        #[command(subcommand)]
        command: crate::operators::cli::OperatorCommand,
    },
    /// Measure ingest, download and propagation speed on this machine.
    Bench(crate::bench::BenchArgs),
    /// Venue owners: a printable check-in poster and its trace secret.
    Venue {
        /// What to do.
        #[command(subcommand)]
        command: crate::venue::VenueCommand,
    },
}

/// Authority key commands.
#[derive(Subcommand, Debug)]
pub enum AuthorityCommand {
    /// Generate a new key and print its trust-list entry.
    Keygen {
        /// Authority id, e.g. "example.health".
        #[arg(long)]
        origin: String,
        /// Key id.
        #[arg(long, default_value_t = 1)]
        key_id: u32,
        /// Where to write the secret key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Replace a key with a fresh one under the next key id; print the new entry.
    Rotate {
        /// The key file to rotate.
        #[arg(long)]
        key_file: PathBuf,
    },
    /// Generate the authority's GAEN export key with its certificate (give it
    /// to the gateway as gateway.export_key_file).
    ExportKeygen(crate::export_keys::ExportKeygenArgs),
    /// Signed risk configurations (give one to the gateway as gateway.risk_config_file).
    RiskConfig {
        /// What to do.
        #[command(subcommand)]
        command: crate::export_keys::RiskConfigCommand,
    },
    /// Generate the VOPRF key of one token epoch (list it under gateway.token_keys).
    TokenKeygen {
        /// Epoch (key id) of the key.
        #[arg(long)]
        epoch: u32,
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Retention commands.
#[derive(Subcommand, Debug)]
pub enum RetentionCommand {
    /// Delete (and log the deletion of) everything past retention now, on a
    /// stopped node's data dir; prints what was deleted.
    Run {
        /// Configuration file.
        #[arg(long)]
        config: PathBuf,
    },
}

/// Upload-code commands.
#[derive(Subcommand, Debug)]
pub enum CodesCommand {
    /// Issue codes for the gateway configured in --config; prints them, stores
    /// only salted hashes.
    Issue {
        /// The gateway's configuration (required: codes belong to one gateway).
        #[arg(long)]
        config: PathBuf,
        /// Long codes for apps and QR codes, or short ones (`XXXX-XXXX-XXXX`)
        /// to read out over a phone hotline.
        #[arg(long, value_enum, default_value_t)]
        form: upload_codes::CodeForm,
        /// Codes for the token issuer (anonymous uploads, the default for phones)
        /// instead of direct plaintext uploads.
        #[arg(long)]
        tokens: bool,
        /// How many.
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Validity in hours.
        #[arg(long, default_value_t = 48)]
        ttl_hours: u64,
    },
}

fn load(config: Option<PathBuf>) -> Result<Config, String> {
    match config {
        Some(p) => Config::load(&p).map_err(|e| e.to_string()),
        None => Ok(Config::default()),
    }
}

/// One retention run on the (stopped) node's data dir, as the node's job runs it.
fn retention_now(
    config: &Config,
) -> Result<Option<traceless_protocol::wire::DeletionRecord>, String> {
    let store = crate::storage::SledStore::open(&config.data_dir.join("db"))
        .map_err(|e| format!("{e} (stop the node first: retention runs in it on its own)"))?;
    let node_key = keys::deletion_log_key(&config.data_dir).map_err(|e| e.to_string())?;
    let log = crate::log::TransparencyLog::open(store.db(), node_key.clone());
    crate::retention::run(
        &store,
        &crate::storage::warnings::WarningFiles::at(&config.data_dir),
        &log,
        &node_key,
        config.gateway.as_ref().map(|g| g.origin.as_str()),
        SystemClock.now(),
    )
    .map_err(|e| e.to_string())
}

/// SIGTERM (what systemd and container runtimes send) and SIGINT (Ctrl-C),
/// caught from creation on (so install them before announcing the node).
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> Result<Self, String> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?,
            int: signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?,
        })
    }

    /// Waits for either; returns which one arrived.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Runs a parsed command line.
pub async fn main(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Run { config, start_time } => {
            let config = load(config)?;
            let mut signals = StopSignals::install()?;
            let clock: crate::clock::SharedClock = match start_time {
                Some(t) => Arc::new(crate::clock::StartedAt::new(t)),
                None => Arc::new(SystemClock),
            };
            let node = crate::start(config, clock)
                .await
                .map_err(|e| e.to_string())?;
            println!("traceless-node: HTTP on http://{}/", node.http_addr);
            for a in &node.p2p_addrs {
                println!("traceless-node: libp2p on {a}");
            }
            let signal = signals.recv().await;
            tracing::info!("{signal}: shutting down");
            node.shutdown().await;
            tracing::info!("stopped cleanly");
            Ok(())
        }
        Command::Id { config } => {
            let config = load(config)?;
            let identity = keys::node_identity(&config.data_dir).map_err(|e| e.to_string())?;
            let peer_id = identity.public().to_peer_id();
            println!("{peer_id}");
            for a in &config.p2p.listen {
                println!("{a}/p2p/{peer_id}");
            }
            Ok(())
        }
        Command::Retention {
            command: RetentionCommand::Run { config },
        } => {
            let config = Config::load(&config).map_err(|e| e.to_string())?;
            let record = retention_now(&config)?;
            match record {
                None => println!("nothing past retention"),
                Some(r) => println!(
                    "deleted {} ranges; deletion-log entry {}",
                    r.deleted.len(),
                    r.index
                ),
            }
            Ok(())
        }
        Command::Init { out } => {
            if out.exists() {
                return Err(format!("{} exists; not overwriting it", out.display()));
            }
            std::fs::write(&out, EXAMPLE).map_err(|e| e.to_string())?;
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::Authority {
            command: AuthorityCommand::TokenKeygen { epoch, out },
        } => {
            let key = TokenKey::generate(epoch);
            keys::write_token_key(&out, &key).map_err(|e| e.to_string())?;
            // Absolute: the config resolves relative paths against its own
            // directory, not against where this command ran.
            let file = std::path::absolute(&out).map_err(|e| e.to_string())?;
            println!(
                "# Add to [gateway] of the authority's gateway:\n# token_keys = [{{ epoch = {epoch}, file = {:?} }}]\n# public key (phones verify issuance with it): {}",
                file.display(),
                hex::encode(key.public_key().key)
            );
            Ok(())
        }
        Command::Authority {
            command: AuthorityCommand::ExportKeygen(args),
        } => crate::export_keys::run_export_keygen(&args, SystemClock.now()),
        Command::Authority {
            command:
                AuthorityCommand::RiskConfig {
                    command: crate::export_keys::RiskConfigCommand::Sign(args),
                },
        } => crate::export_keys::run_risk_config_sign(&args, SystemClock.now()),
        Command::Authority { command } => {
            let key = match command {
                AuthorityCommand::Keygen {
                    origin,
                    key_id,
                    out,
                } => {
                    let key = AuthorityKey::generate(origin, key_id);
                    keys::write_authority_key(&out, &key).map_err(|e| e.to_string())?;
                    key
                }
                AuthorityCommand::Rotate { key_file } => {
                    keys::rotate_authority_key(&key_file).map_err(|e| e.to_string())?
                }
                AuthorityCommand::TokenKeygen { .. }
                | AuthorityCommand::ExportKeygen(_)
                | AuthorityCommand::RiskConfig { .. } => unreachable!("handled above"),
            };
            println!(
                "# Add to the [[trust]] list of every node:\n{}",
                keys::trust_entry(&key)
            );
            Ok(())
        }
        Command::Codes {
            command:
                CodesCommand::Issue {
                    config,
                    form,
                    tokens,
                    count,
                    ttl_hours,
                },
        } => {
            let config = Config::load(&config).map_err(|e| e.to_string())?;
            if config.role != Role::Gateway {
                return Err(format!(
                    "{} is not a gateway's configuration (role = \"gateway\"): codes issued for it could never be used",
                    config.data_dir.display()
                ));
            }
            if tokens
                && config
                    .gateway
                    .as_ref()
                    .is_none_or(|g| g.token_keys.is_empty())
            {
                return Err(
                    "--tokens needs gateway.token_keys: this gateway issues no tokens".into(),
                );
            }
            let expires = SystemClock.now() + ttl_hours * 3600;
            let (codes, records) = upload_codes::issue_form(count, form, expires);
            let dir = if tokens {
                config.data_dir.join("issuer")
            } else {
                config.data_dir.clone()
            };
            upload_codes::write_incoming(&dir, &records).map_err(|e| e.to_string())?;
            for c in codes {
                println!("{c}");
            }
            Ok(())
        }
        Command::Operator { command } => crate::operators::cli::run(&command),
        Command::Bench(args) => crate::bench::run(args).await,
        Command::Venue { command } => crate::venue::run(&command),
    }
}
