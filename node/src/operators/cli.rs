//! `traceless-node operator add`: the bootstrap of a gateway's staff accounts,
//! run by whoever runs the node, on its stopped data directory (the running
//! node holds the database). Logged as actor `operator-cli`.

use std::io::BufRead;
use std::path::PathBuf;

use clap::Subcommand;

use super::{parse_roles, password, roles_text, Actor, Staff};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Role};

/// Operator commands.
#[derive(Subcommand, Debug)]
pub enum OperatorCommand {
    /// Create an account; prints a fresh one-time password (or reads the
    /// password from stdin with --password-stdin).
    Add {
        /// The gateway's configuration.
        #[arg(long)]
        config: PathBuf,
        /// Account name: 1..=64 of [a-z0-9._-].
        #[arg(long)]
        name: String,
        /// Comma-separated: issue-codes, manage-operators, read-audit.
        #[arg(long)]
        roles: String,
        /// Read the password from the first line of stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Runs an operator command.
pub fn run(command: &OperatorCommand) -> Result<(), String> {
    let OperatorCommand::Add {
        config,
        name,
        roles,
        password_stdin,
    } = command;
    let config = Config::load(config).map_err(|e| e.to_string())?;
    if config.role != Role::Gateway {
        return Err("operator accounts exist only on a gateway (role = \"gateway\")".into());
    }
    let roles = parse_roles(roles).map_err(|e| e.to_string())?;
    let (password, generated) = if *password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        (line.trim_end_matches(['\r', '\n']).to_owned(), false)
    } else {
        (password::generate(), true)
    };
    let store = crate::storage::SledStore::open(&config.data_dir.join("db"))
        .map_err(|e| format!("{e} (stop the node first: it holds the database)"))?;
    let node_key = crate::keys::deletion_log_key(&config.data_dir).map_err(|e| e.to_string())?;
    let log = crate::log::TransparencyLog::open(store.db(), node_key);
    let staff = Staff::open(store.db());
    let account = staff
        .accounts
        .create(&log, Actor::Cli, name, roles, &password, SystemClock.now())
        .map_err(|e| e.to_string())?;
    println!(
        "created operator {} with roles {}",
        account.name,
        roles_text(&account.roles)
    );
    if generated {
        println!("one-time password (shown only now): {password}");
    }
    Ok(())
}
