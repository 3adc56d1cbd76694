//! `traceless-node venue create`: a venue owner's printable poster with the
//! entry QR code (SPEC.md §12.1), and, in a file of its own, the owner's trace
//! secret (§12.4); for a set of rooms (`--room`, the managed variant) one
//! poster per room and one passphrase that traces them all; for a place with
//! no owner (`--self-reported`, §12.11) the poster alone. Nothing is sent
//! anywhere: no server learns that the venue exists, and no poster holds a
//! secret.

mod poster;
pub mod trace;

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clap::{Args, Subcommand};
use traceless_protocol::venue::{
    create_room, create_self_reported, create_venue, generate_passphrase, CreatedVenue, EntryCode,
    MasterPublic, Organisation, PreTrace, TraceSecret, VenueDescription,
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
    #[arg(long, required_unless_present = "self_reported")]
    pub authority_key: Option<String>,
    /// A place with no owner to hold a trace secret: the JSON the gateway
    /// serves at `GET /v1/gateway-keys`, saved to a file. Visitors who test
    /// positive report their stays; only the poster is written.
    #[arg(long, conflicts_with_all = ["authority_key", "rooms"])]
    pub self_reported: Option<PathBuf>,
    /// A room of a managed set (repeat for each, at most 100): one poster per
    /// room (`room-<n>-poster.svg`, `.html`), `rooms.txt` (what tracing a room
    /// needs besides the passphrase; not secret) and `passphrase.txt` (the one
    /// secret that traces every room, with the health authority).
    #[arg(long = "room")]
    pub rooms: Vec<String>,
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
    /// file holding the trace QR's text; for a room of a set, `passphrase.txt`
    /// (with --rooms and --room).
    #[arg(long)]
    pub secret: PathBuf,
    /// The set's `rooms.txt`, when --secret is its passphrase.
    #[arg(long, requires = "room")]
    pub rooms: Option<PathBuf>,
    /// Which room of the set (its label as on the poster).
    #[arg(long, requires = "rooms")]
    pub room: Option<String>,
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

/// The first line of `text` that is not empty and not a `#` comment.
fn first_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
}

/// The encoded pre-trace of `[from, to)` from the text of a trace secret file
/// (the `traceless-trace:1:` line; `#` lines are comments), as of `now`.
pub fn pre_trace(secret_file: &str, from: u64, to: u64, now: u64) -> Result<PreTrace, String> {
    let line = first_line(secret_file).ok_or("the secret file holds no trace secret line")?;
    let secret = TraceSecret::from_text(line).map_err(|e| format!("trace secret refused: {e}"))?;
    pre_trace_of(&secret, from, to, now)
}

fn pre_trace_of(secret: &TraceSecret, from: u64, to: u64, now: u64) -> Result<PreTrace, String> {
    secret
        .pre_trace(from, to, now)
        .map_err(|e| format!("window refused: {e}"))
}

/// A managed set as `rooms.txt` keeps it: the organisation (its `mpk` and the
/// sealed authority share) and every room's entry code.
struct RoomSet {
    organisation: Organisation,
    rooms: Vec<EntryCode>,
}

impl RoomSet {
    fn to_text(&self) -> String {
        let mut out = String::from(
            "# A set of rooms traced with one passphrase (SPEC.md §12.4). Not secret:
             # with passphrase.txt it makes a room's pre-trace
             # (traceless-node venue pre-trace --secret passphrase.txt --rooms rooms.txt
             # --room <label> --from <unix> --to <unix>).
",
        );
        out.push_str(&format!(
            "organisation {} {}
",
            hex::encode(self.organisation.master_public.to_bytes()),
            hex::encode(&self.organisation.sealed_ha)
        ));
        for r in &self.rooms {
            out.push_str(&format!(
                "room {}
",
                URL_SAFE_NO_PAD.encode(r.payload())
            ));
        }
        out
    }

    fn from_text(text: &str) -> Result<RoomSet, String> {
        let bad = |what: &str| format!("rooms file: {what}");
        let mut organisation = None;
        let mut rooms = Vec::new();
        for line in text.lines().map(str::trim) {
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next()) {
                (Some("organisation"), Some(mpk), Some(sealed)) => {
                    let mpk = hex::decode(mpk).map_err(|_| bad("mpk is not hex"))?;
                    organisation = Some(Organisation {
                        master_public: MasterPublic::from_bytes(&mpk)
                            .map_err(|e| bad(&e.to_string()))?,
                        sealed_ha: hex::decode(sealed).map_err(|_| bad("share is not hex"))?,
                    });
                }
                (Some("room"), Some(payload), None) => {
                    let payload = URL_SAFE_NO_PAD
                        .decode(payload)
                        .map_err(|_| bad("a room is not base64url"))?;
                    rooms.push(EntryCode::from_payload(&payload).map_err(|e| bad(&e.to_string()))?);
                }
                _ if line.is_empty() || line.starts_with('#') => {}
                _ => return Err(bad("a line is neither an organisation nor a room")),
            }
        }
        let organisation = organisation.ok_or_else(|| bad("no organisation line"))?;
        Ok(RoomSet {
            organisation,
            rooms,
        })
    }

    /// The trace secret of the room labelled `label`.
    fn trace_secret(&self, passphrase: &str, label: &str) -> Result<TraceSecret, String> {
        let room = self
            .rooms
            .iter()
            .find(|r| r.venue.room == label)
            .ok_or_else(|| format!("the set has no room {label:?}"))?;
        self.organisation
            .trace_secret(passphrase, room)
            .map_err(|e| format!("passphrase refused: {e}"))
    }
}

/// Runs `venue pre-trace` at `now`: writes the file, owner-only, and says what
/// it covers.
fn write_pre_trace(args: &PreTraceArgs, now: u64) -> Result<String, String> {
    let read =
        |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()));
    let text = read(&args.secret)?;
    let pre = match (&args.rooms, &args.room) {
        (Some(rooms), Some(label)) => {
            let passphrase = first_line(&text).ok_or("the passphrase file holds no passphrase")?;
            let secret = RoomSet::from_text(&read(rooms)?)?.trace_secret(passphrase, label)?;
            pre_trace_of(&secret, args.from, args.to, now)?
        }
        _ => pre_trace(&text, args.from, args.to, now)?,
    };
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
            println!("{}", advice(args));
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

/// What the owner does with the files.
fn advice(args: &CreateArgs) -> &'static str {
    if args.self_reported.is_some() {
        "Print the poster and hang it at the entrance. There is no trace secret: \
         visitors who test positive report their stays themselves."
    } else if !args.rooms.is_empty() {
        "Print each room's poster and hang it at its door. Keep passphrase.txt apart \
         from them (print it, or store it offline): with rooms.txt and the health \
         authority it warns the visitors of a room."
    } else {
        "Print the poster and hang it at the entrance. Keep trace-secret.txt \
         apart from it (print it, or store it offline): it is needed, with the \
         health authority, to warn this venue's visitors."
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

/// Most rooms in one set.
const MAX_ROOMS: usize = 100;

/// The self-reported code of `venue` from a saved `GET /v1/gateway-keys`.
fn self_reported(venue: &VenueDescription, keys_file: &Path) -> Result<EntryCode, String> {
    let text = std::fs::read_to_string(keys_file)
        .map_err(|e| format!("reading {}: {e}", keys_file.display()))?;
    let keys: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not the gateway's keys JSON: {e}",
            keys_file.display()
        )
    })?;
    let field = |name: &str| {
        keys[name]
            .as_str()
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| format!("{}: no hex {name}", keys_file.display()))
    };
    let mpk = MasterPublic::from_bytes(&field("venue_public_key")?)
        .map_err(|e| format!("venue_public_key: {e}"))?;
    let seal: [u8; 32] = field("seal_public_key")?
        .try_into()
        .map_err(|_| "seal_public_key is not 32 bytes".to_string())?;
    create_self_reported(venue, &mpk, &seal).map_err(|e| format!("venue: {e}"))
}

/// What `create` writes: file name, contents, whether it is secret.
type Files = Vec<(String, String, bool)>;

fn posters(prefix: &str, entry: &EntryCode, base_url: &str) -> Result<Files, String> {
    let svg = poster_svg(entry, &entry.to_url(base_url))?;
    Ok(vec![
        (format!("{prefix}poster.svg"), svg.clone(), false),
        (
            format!("{prefix}poster.html"),
            poster_html(&entry.venue, &svg),
            false,
        ),
    ])
}

/// The files of a managed set: a poster per room, the set, the passphrase.
fn room_set(venue: &VenueDescription, args: &CreateArgs) -> Result<Files, String> {
    if args.rooms.len() > MAX_ROOMS {
        return Err(format!(
            "{} rooms; a set holds at most {MAX_ROOMS}",
            args.rooms.len()
        ));
    }
    if let Some(dup) = (1..args.rooms.len()).find(|&i| args.rooms[..i].contains(&args.rooms[i])) {
        return Err(format!("room {:?} is given twice", args.rooms[dup]));
    }
    let authority = authority_key(args.authority_key.as_deref().unwrap_or_default())?;
    let passphrase = generate_passphrase();
    let organisation =
        Organisation::create(&passphrase, &authority).map_err(|e| format!("venue: {e}"))?;
    let mut files = Vec::new();
    let mut rooms = Vec::new();
    for (i, label) in args.rooms.iter().enumerate() {
        let room = VenueDescription {
            room: label.clone(),
            ..venue.clone()
        };
        let entry =
            create_room(&organisation, &room).map_err(|e| format!("room {label:?}: {e}"))?;
        files.extend(posters(
            &format!("room-{}-", i + 1),
            &entry,
            &args.base_url,
        )?);
        rooms.push(entry);
    }
    let set = RoomSet {
        organisation,
        rooms,
    };
    files.push(("rooms.txt".into(), set.to_text(), false));
    files.push((
        "passphrase.txt".into(),
        format!(
            "# Passphrase of the rooms of \"{}\", {}.\n\
             # Keep it apart from the posters: with rooms.txt and the health\n\
             # authority it warns the visitors of any one room (see rooms.txt).\n\
             {passphrase}\n",
            venue.description, venue.address
        ),
        true,
    ));
    Ok(files)
}

/// Creates the venue and writes its files; returns their paths. Nothing is
/// written if an argument is refused or a file already exists.
pub fn create(args: &CreateArgs) -> Result<Vec<PathBuf>, String> {
    let venue = description(args)?;
    if !args.base_url.starts_with("https://") || args.base_url.contains(['#', '?']) {
        return Err("--base-url must be an https URL without ? or #".into());
    }
    let files = if let Some(keys) = &args.self_reported {
        posters("", &self_reported(&venue, keys)?, &args.base_url)?
    } else if !args.rooms.is_empty() {
        room_set(&venue, args)?
    } else {
        let authority = authority_key(args.authority_key.as_deref().unwrap_or_default())?;
        let CreatedVenue {
            entry,
            trace_secret,
        } = create_venue(&venue, &authority).map_err(|e| format!("venue: {e}"))?;
        let mut files = posters("", &entry, &args.base_url)?;
        files.push((
            "trace-secret.txt".into(),
            trace_secret_text(&entry.venue, &trace_secret.to_text()),
            true,
        ));
        files
    };
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
