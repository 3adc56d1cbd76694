//! `traceless-node venue trace`: the health authority completes a venue
//! owner's pre-trace on its gateway's data dir (SPEC.md §12.5, §12.10). The
//! tracer sees the venue description, address, room and window, never a
//! visitor; the warnings are queued durably and the running gateway publishes
//! them at its next period boundary.

use std::path::PathBuf;

use clap::Args;
use traceless_protocol::venue::{PreTrace, TraceView};
use traceless_protocol::GatewaySealKey;

use crate::config::{Config, Role};
use crate::core::warnings::trace_into;
use crate::storage::warnings::WarningFiles;

/// A trace on a gateway's data dir.
#[derive(Args, Debug)]
pub struct TraceArgs {
    /// The gateway's configuration (its data dir holds the venue authority key).
    #[arg(long)]
    pub config: PathBuf,
    /// The owner's pre-trace (`PreTrace` protobuf, as the owner's tool writes it).
    #[arg(long)]
    pub pre_trace: PathBuf,
    /// What visitors are told (at most 500 characters).
    #[arg(long)]
    pub message: String,
    /// Transmission risk level, 0-8.
    #[arg(long, default_value_t = 5)]
    pub risk: u32,
}

/// What the tracer is shown: the venue and the window, and how many hours.
pub fn describe(view: &TraceView, slots: usize) -> String {
    let room = if view.room.is_empty() {
        String::new()
    } else {
        format!(", room {}", view.room)
    };
    format!(
        "traced {} ({}{room}) from {} to {} (unix seconds): {slots} hour(s) queued for the next publication",
        view.description, view.address, view.window_start, view.window_end
    )
}

/// Decodes the owner's pre-trace, completes it with `seal` and queues it in
/// `files` (see [`trace_into`]).
pub fn trace_with(
    seal: &GatewaySealKey,
    files: &WarningFiles,
    pre_trace: &[u8],
    message: &str,
    risk: u32,
    now: u64,
) -> Result<(TraceView, usize), String> {
    let pre = PreTrace::decode(pre_trace).map_err(|e| format!("pre-trace refused: {e}"))?;
    trace_into(seal, files, &pre, message, risk, now).map_err(|e| e.to_string())
}

/// Runs `venue trace` at the system clock's now.
pub fn run(args: &TraceArgs) -> Result<String, String> {
    let config = Config::load(&args.config).map_err(|e| e.to_string())?;
    if config.role != Role::Gateway {
        return Err(format!(
            "{} is not a gateway's configuration: only a gateway holds the venue authority key",
            args.config.display()
        ));
    }
    let key_path = config.data_dir.join("gateway-seal.key");
    if !key_path.exists() {
        return Err(format!(
            "{} does not exist: start the gateway once (it makes its key) before tracing",
            key_path.display()
        ));
    }
    let seal = crate::keys::gateway_seal_key(&config.data_dir).map_err(|e| e.to_string())?;
    let pre = std::fs::read(&args.pre_trace)
        .map_err(|e| format!("reading {}: {e}", args.pre_trace.display()))?;
    let now = system_now()?;
    let (view, slots) = trace_with(
        &seal,
        &WarningFiles::at(&config.data_dir),
        &pre,
        &args.message,
        args.risk,
        now,
    )?;
    Ok(describe(&view, slots))
}

/// The system clock, read once at a venue command's entry point and passed on.
pub(super) fn system_now() -> Result<u64, String> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs())
}
