//! `traceless-node venue create`: a venue owner's printable poster with the
//! entry QR code (SPEC.md §12.1), and, in a file of its own, the owner's trace
//! secret (§12.4). Nothing is sent anywhere: no server learns that the venue
//! exists, and the poster holds no secret.

mod poster;
pub mod trace;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use traceless_protocol::venue::{
    create_venue, CreatedVenue, PreTrace, TraceSecret, VenueDescription,
};

pub use poster::{poster_html, poster_svg};

/// Venue owner commands.
#[derive(Subcommand, Debug)]
pub enum VenueCommand {
    /// Create a venue: write `poster.svg` and `poster.html` (the entry QR code
    /// to hang at the door) and `trace-secret.txt` (keep it apart: with the
    /// health authority it warns the venue's visitors). A flag given twice:
    /// the last one counts.
    #[command(args_override_self = true)]
    Create(CreateArgs),
    /// Venue owner: write the pre-trace of a time window (at most 24 hours,
    /// already over) from the trace secret, to hand to the health authority.
    PreTrace(PreTraceArgs),
    /// Health authority: complete a venue owner's pre-trace on this gateway's
    /// data dir; prints the venue and window (never a visitor) and queues the
    /// warnings for the gateway's next period boundary.
    Trace(trace::TraceArgs),
}

/// What a venue says about itself, and for which authority it is traced.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Name shown to visitors (1-100 characters, one line).
    #[arg(long)]
    pub name: String,
    /// Address (1-100 characters, one line).
    #[arg(long)]
    pub address: String,
    /// Venue type (Corona-Warn-App `TraceLocationType`, 0-12).
    #[arg(long = "type", default_value_t = 0)]
    pub venue_type: u32,
    /// Suggested stay, minutes.
    #[arg(long, default_value_t = 30)]
    pub default_stay: u32,
    /// Phones check out by themselves after this many minutes (at most 1440).
    #[arg(long, default_value_t = 120)]
    pub max_stay: u32,
    /// Start of the code's validity, unix seconds (with --valid-to; default: permanent).
    #[arg(long, requires = "valid_to")]
    pub valid_from: Option<u64>,
    /// End of the code's validity, unix seconds.
    #[arg(long, requires = "valid_from")]
    pub valid_to: Option<u64>,
    /// The health authority's venue key: 64 hex digits of its X25519 public key
    /// (the gateway's seal key, `GET /v1/gateway-keys`).
    #[arg(long)]
    pub authority_key: String,
    /// The URL phones open: the payload goes after `#`, so its server never sees it.
    #[arg(long, default_value = "https://traceless.example/checkin")]
    pub base_url: String,
    /// Directory to write the three files to (created; existing files are not overwritten).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
}

/// The owner's half of a trace of one window.
#[derive(Args, Debug)]
pub struct PreTraceArgs {
    /// The trace secret file `venue create` wrote (`trace-secret.txt`), or a
    /// file holding the trace QR's text.
    #[arg(long)]
    pub secret: PathBuf,
    /// Window start, unix seconds.
    #[arg(long)]
    pub from: u64,
    /// Window end, unix seconds (not in the future; at most 24 hours after --from).
    #[arg(long)]
    pub to: u64,
    /// File to write (not overwritten if it exists).
    #[arg(long, default_value = "pre-trace.bin")]
    pub out: PathBuf,
}

/// The encoded pre-trace of `[from, to)` from the text of a trace secret file
/// (the `traceless-trace:1:` line; `#` lines are comments), as of `now`.
pub fn pre_trace(secret_file: &str, from: u64, to: u64, now: u64) -> Result<PreTrace, String> {
    let line = secret_file
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or("the secret file holds no trace secret line")?;
    let secret = TraceSecret::from_text(line).map_err(|e| format!("trace secret refused: {e}"))?;
    secret
        .pre_trace(from, to, now)
        .map_err(|e| format!("window refused: {e}"))
}

/// Runs `venue pre-trace` at `now`: writes the file, owner-only, and says what
/// it covers.
fn write_pre_trace(args: &PreTraceArgs, now: u64) -> Result<String, String> {
    let text = std::fs::read_to_string(&args.secret)
        .map_err(|e| format!("reading {}: {e}", args.secret.display()))?;
    let pre = pre_trace(&text, args.from, args.to, now)?;
    write_new(&args.out, &pre.encode(), true).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            format!("{} exists; not overwriting it", args.out.display())
        }
        _ => format!("{}: {e}", args.out.display()),
    })?;
    Ok(format!(
        "wrote {}: {} hour(s) from {} to {} (unix seconds). Give it to the health \
         authority; it shows the authority this venue and window, and no visitor.",
        args.out.display(),
        pre.keys.len(),
        pre.window_start,
        pre.window_end
    ))
}

/// Runs a venue command.
pub fn run(command: &VenueCommand) -> Result<(), String> {
    match command {
        VenueCommand::Create(args) => {
            let written = create(args)?;
            for p in written {
                println!("wrote {}", p.display());
            }
            println!(
                "Print the poster and hang it at the entrance. Keep trace-secret.txt \
                 apart from it (print it, or store it offline): it is needed, with the \
                 health authority, to warn this venue's visitors."
            );
            Ok(())
        }
        VenueCommand::PreTrace(args) => {
            println!("{}", write_pre_trace(args, trace::system_now()?)?);
            Ok(())
        }
        VenueCommand::Trace(args) => {
            println!("{}", trace::run(args)?);
            Ok(())
        }
    }
}

/// The venue's description from the arguments, checked by the protocol's rules.
fn description(args: &CreateArgs) -> Result<VenueDescription, String> {
    let mut v = VenueDescription::new(
        &args.name,
        &args.address,
        args.venue_type,
        args.default_stay,
        args.max_stay,
    );
    v.valid_from = args.valid_from.unwrap_or(0);
    v.valid_to = args.valid_to.unwrap_or(0);
    v.validate().map_err(|e| format!("venue: {e}"))?;
    Ok(v)
}

fn authority_key(hex_key: &str) -> Result<[u8; 32], String> {
    let raw =
        hex::decode(hex_key.trim()).map_err(|e| format!("--authority-key is not hex: {e}"))?;
    raw.try_into()
        .map_err(|r: Vec<u8>| format!("--authority-key is {} bytes, not 32", r.len()))
}

/// Creates the venue and writes its files; returns their paths. Nothing is
/// written if an argument is refused or a file already exists.
pub fn create(args: &CreateArgs) -> Result<Vec<PathBuf>, String> {
    let venue = description(args)?;
    let authority = authority_key(&args.authority_key)?;
    if !args.base_url.starts_with("https://") || args.base_url.contains(['#', '?']) {
        return Err("--base-url must be an https URL without ? or #".into());
    }
    let CreatedVenue {
        entry,
        trace_secret,
    } = create_venue(&venue, &authority).map_err(|e| format!("venue: {e}"))?;
    let url = entry.to_url(&args.base_url);
    let svg = poster_svg(&entry.venue, &url)?;
    let files = [
        ("poster.svg", svg.clone(), false),
        ("poster.html", poster_html(&entry.venue, &svg), false),
        (
            "trace-secret.txt",
            trace_secret_text(&entry.venue, &trace_secret.to_text()),
            true,
        ),
    ];
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    for (name, _, _) in &files {
        let p = args.out.join(name);
        if p.exists() {
            return Err(format!("{} exists; not overwriting it", p.display()));
        }
    }
    files
        .iter()
        .map(|(name, text, secret)| {
            let p = args.out.join(name);
            write_new(&p, text.as_bytes(), *secret).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(p)
        })
        .collect()
}

fn trace_secret_text(venue: &VenueDescription, secret: &str) -> String {
    format!(
        "# Trace secret of \"{}\", {}.\n\
         # Keep it apart from the poster. If the health authority asks you to\n\
         # warn visitors of a time window, give it the pre-trace made from this\n\
         # file (traceless-node venue pre-trace --secret <this file> --from <unix>\n\
         # --to <unix>); the authority alone cannot warn anyone, nor can you alone.\n\
         {secret}\n",
        venue.description, venue.address
    )
}

/// Creates `path` (failing if it exists), owner-only for a secret, synced.
fn write_new(path: &Path, bytes: &[u8], secret: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
