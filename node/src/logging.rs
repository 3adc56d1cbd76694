//! The node's log: `RUST_LOG` filtering (default `info,libp2p=warn`), plain text
//! or one JSON object per line, on stderr, colours only on a terminal.
//!
//! No log line holds a client address, at any level: the node's own code never
//! logs one, and the one dependency target that did (`axum::serve`, which logged
//! `connection <ip:port> accepted` at trace) is switched off after `RUST_LOG`
//! is applied, so no setting turns it back on.

use std::io::IsTerminal;

use tracing_subscriber::filter::{Directive, EnvFilter};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// Dependency targets that would log a client address; always off.
const ADDRESS_LOGGING_TARGETS: &[&str] = &["axum::serve"];

/// The filter: `RUST_LOG` (or the default), then the address-logging targets off.
pub fn filter() -> EnvFilter {
    let mut f =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,libp2p=warn"));
    for target in ADDRESS_LOGGING_TARGETS {
        let off: Directive = format!("{target}=off").parse().expect("a valid directive");
        f = f.add_directive(off);
    }
    f
}

/// Installs the global subscriber (once per process; later calls do nothing).
pub fn init(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
