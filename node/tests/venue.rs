//! `traceless-node venue create`: the poster's QR code, rasterised from the SVG
//! with resvg and read back with a real decoder (rqrr), holds the entry URL of
//! the same venue the separate trace secret traces; the poster holds no secret;
//! refused arguments write nothing.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use traceless_protocol::venue::{EntryCode, TraceSecret, VenueError};
use traceless_protocol::GatewaySealKey;

const NAME: &str = "Apotheke am Markt & Söhne";

fn venue_create(out: &Path, name: &str, authority: &GatewaySealKey, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_traceless-node"))
        .args(["venue", "create", "--name", name])
        .args(["--address", "Marktplatz 3, 04109 Leipzig"])
        .args(["--type", "3", "--default-stay", "15", "--max-stay", "90"])
        .args(["--authority-key", &hex::encode(authority.public_bytes())])
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// The SVG rasterised at `px_per_mm`, read by rqrr: the text of every code found.
fn decode_qr(svg: &str, px_per_mm: f32) -> Vec<String> {
    let tree = resvg::usvg::Tree::from_str(svg, &resvg::usvg::Options::default()).unwrap();
    let size = tree.size();
    let (w, h) = (
        (size.width() * px_per_mm) as u32,
        (size.height() * px_per_mm) as u32,
    );
    let mut pixmap = resvg::tiny_skia::Pixmap::new(w, h).unwrap();
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::from_scale(px_per_mm, px_per_mm),
        &mut pixmap.as_mut(),
    );
    let rgba = pixmap.data();
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w as usize, h as usize, |x, y| {
        let i = (y * w as usize + x) * 4;
        // Over white: a transparent pixel is paper.
        let alpha = u32::from(rgba[i + 3]);
        let grey = (u32::from(rgba[i]) + u32::from(rgba[i + 1]) + u32::from(rgba[i + 2])) / 3;
        (grey * alpha / 255 + (255 - alpha)) as u8
    });
    img.detect_grids()
        .into_iter()
        .map(|g| g.decode().unwrap().1)
        .collect()
}

#[test]
fn the_posters_qr_code_decodes_to_the_venue_its_trace_secret_traces() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("poster");
    let authority = GatewaySealKey::generate();
    let run = venue_create(&out, NAME, &authority, &[]);
    assert!(run.status.success(), "{:?}", run);
    let svg = std::fs::read_to_string(out.join("poster.svg")).unwrap();
    let html = std::fs::read_to_string(out.join("poster.html")).unwrap();
    let secret = std::fs::read_to_string(out.join("trace-secret.txt")).unwrap();

    // A real decoder reads the code off the rendered page (4 px per mm, ~400 dpi
    // would be a print; 3 px per mm is a phone photo of a small print).
    for px_per_mm in [4.0, 3.0] {
        let texts = decode_qr(&svg, px_per_mm);
        assert_eq!(texts.len(), 1, "one code on the page at {px_per_mm} px/mm");
        let entry = EntryCode::from_url(&texts[0]).unwrap();
        assert_eq!(entry.venue.description, NAME);
        assert_eq!(entry.venue.address, "Marktplatz 3, 04109 Leipzig");
        assert_eq!(
            (
                entry.venue.venue_type,
                entry.venue.default_stay_minutes,
                entry.venue.max_stay_minutes
            ),
            (3, 15, 90)
        );
        assert!(texts[0].starts_with("https://traceless.example/checkin?v=3#"));
        // The trace secret in its own file traces exactly this code.
        let line = secret.lines().find(|l| !l.starts_with('#')).unwrap();
        let trace = TraceSecret::from_text(line).unwrap();
        assert_eq!(trace.entry(), entry);
    }
    // The page as a person reads it, and no secret on it.
    assert!(
        svg.contains("Apotheke am Markt &amp; Söhne"),
        "escaped name"
    );
    assert!(svg.contains("checks out by itself after 90 min"));
    assert!(
        html.contains(svg.trim_end()),
        "the HTML page embeds the same poster"
    );
    let secret_b64 = secret.lines().find(|l| !l.starts_with('#')).unwrap();
    assert!(!svg.contains(&secret_b64[18..60]) && !html.contains(&secret_b64[18..60]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("trace-secret.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the trace secret is owner-only");
    }

    // Run again into the same directory: refused, the files left as they were.
    let again = venue_create(&out, NAME, &authority, &[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not overwriting"));
    assert_eq!(
        std::fs::read_to_string(out.join("poster.svg")).unwrap(),
        svg
    );
}

#[test]
fn refused_arguments_say_why_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let authority = GatewaySealKey::generate();
    let long = "x".repeat(101);
    for (extra, reason) in [
        (vec![], "description: TooLong(101)"),
        (vec!["--max-stay", "5"], "stay 15/5 minutes is invalid"),
        (vec!["--type", "13"], "venue type 13 is not a known type"),
        (
            vec!["--valid-from", "200", "--valid-to", "100"],
            "validity period 200..100 is invalid",
        ),
        (vec!["--base-url", "http://x.example/c"], "https URL"),
    ] {
        let out = tmp.path().join("never");
        let name = if extra.is_empty() {
            long.as_str()
        } else {
            NAME
        };
        let run = venue_create(&out, name, &authority, &extra);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{extra:?} was accepted");
        assert!(stderr.contains(reason), "{extra:?}: {stderr}");
        assert!(!out.join("poster.svg").exists() && !out.join("trace-secret.txt").exists());
    }
    // The protocol's own check agrees on the text limit.
    assert!(matches!(
        traceless_protocol::venue::VenueDescription::new(&long, "a", 0, 15, 120).validate(),
        Err(VenueError::Text { .. })
    ));
}

fn venue_pre_trace(secret: &Path, from: u64, to: u64, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_traceless-node"))
        .args(["venue", "pre-trace", "--secret"])
        .arg(secret)
        .args(["--from", &from.to_string(), "--to", &to.to_string()])
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// The owner's half: `venue pre-trace` turns the trace secret file into a
/// pre-trace of a past window that the authority's key completes into valid
/// trace keys for exactly that venue and those hours; a window in the future,
/// a damaged secret or an existing output file is refused and writes nothing.
#[test]
fn the_owners_pre_trace_file_is_completed_by_the_authority_and_nobody_else() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("poster");
    let authority = GatewaySealKey::generate();
    assert!(venue_create(&out, NAME, &authority, &[]).status.success());
    let secret = out.join("trace-secret.txt");
    // Three hours of a past window (the command reads the system clock; any
    // day of 2023 is in its past).
    let from = 1_700_000_000 / 3600 * 3600;
    let file = tmp.path().join("pre-trace.bin");
    let run = venue_pre_trace(&secret, from, from + 3 * 3600, &file);
    assert!(run.status.success(), "{run:?}");
    assert!(String::from_utf8_lossy(&run.stdout).contains("3 hour(s)"));
    let pre = traceless_protocol::venue::PreTrace::decode(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(pre.keys.len(), 3);
    let now = from + 86_400;
    let traced =
        traceless_protocol::venue::complete_trace(&pre, &authority, "Please get tested", 5, now)
            .unwrap();
    assert_eq!(traced.view.description, NAME);
    assert_eq!(
        (traced.view.window_start, traced.view.window_end),
        (from, from + 3 * 3600)
    );
    assert_eq!(traced.warnings.len(), 3);
    // Another authority's key opens nothing.
    assert!(matches!(
        traceless_protocol::venue::complete_trace(&pre, &GatewaySealKey::generate(), "x", 5, now),
        Err(VenueError::SealedKey)
    ));

    // Refusals, each with its reason, and no file written.
    let never = tmp.path().join("never.bin");
    let future = u64::from(u32::MAX);
    let damaged = tmp.path().join("damaged.txt");
    std::fs::write(&damaged, "traceless-trace:1:AAAA\n").unwrap();
    for (secret, from, to, reason) in [
        (&secret, future - 3600, future, "ends in the future"),
        (&secret, from, from + 25 * 3600, "more than 24 hours"),
        (&secret, from + 3600, from, "ends before it starts"),
        (&damaged, from, from + 3600, "trace secret refused"),
    ] {
        let run = venue_pre_trace(secret, from, to, &never);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{reason}: accepted");
        assert!(stderr.contains(reason), "{reason}: {stderr}");
        assert!(!never.exists());
    }
    let before = std::fs::read(&file).unwrap();
    let again = venue_pre_trace(&secret, from, from + 3600, &file);
    assert!(String::from_utf8_lossy(&again.stderr).contains("not overwriting"));
    assert_eq!(std::fs::read(&file).unwrap(), before);
}

fn the_code_on(svg: &str) -> EntryCode {
    let texts = decode_qr(svg, 4.0);
    assert_eq!(texts.len(), 1);
    EntryCode::from_url(&texts[0]).unwrap()
}

/// A set of rooms from one passphrase (SPEC.md §12.4, managed): a poster per
/// room whose code a real decoder reads as that room, one owner-only
/// passphrase, and a pre-trace of one room that the authority completes into
/// keys that open that room's records and not another's. A wrong passphrase
/// makes keys the authority refuses; an unknown room writes nothing.
#[test]
fn a_room_set_traces_each_room_from_one_passphrase() {
    use traceless_protocol::venue::{complete_trace, match_records, seal_visit, PreTrace};
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("rooms");
    let authority = GatewaySealKey::generate();
    let rooms = ["--room", "Saal 1", "--room", "Saal 2"];
    let run = venue_create(&out, "Volkshochschule", &authority, &rooms);
    assert!(run.status.success(), "{run:?}");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "passphrase.txt",
            "room-1-poster.html",
            "room-1-poster.svg",
            "room-2-poster.html",
            "room-2-poster.svg",
            "rooms.txt"
        ]
    );
    let codes: Vec<EntryCode> = ["room-1-poster.svg", "room-2-poster.svg"]
        .iter()
        .map(|f| the_code_on(&std::fs::read_to_string(out.join(f)).unwrap()))
        .collect();
    assert_eq!(
        codes
            .iter()
            .map(|c| c.venue.room.as_str())
            .collect::<Vec<_>>(),
        ["Saal 1", "Saal 2"]
    );
    assert_eq!(codes[0].master_public, codes[1].master_public, "one set");
    assert!(std::fs::read_to_string(out.join("room-2-poster.svg"))
        .unwrap()
        .contains(">Saal 2</text>"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("passphrase.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the passphrase is owner-only");
    }

    let (from, to) = (1_700_000_000 - 1_700_000_000 % 3600, 1_700_003_600);
    let pre_trace = |passphrase: &Path, room: &str, file: &str| {
        Command::new(env!("CARGO_BIN_EXE_traceless-node"))
            .args(["venue", "pre-trace", "--secret"])
            .arg(passphrase)
            .arg("--rooms")
            .arg(out.join("rooms.txt"))
            .args(["--room", room])
            .args(["--from", &from.to_string(), "--to", &to.to_string()])
            .arg("--out")
            .arg(tmp.path().join(file))
            .output()
            .unwrap()
    };
    let run = pre_trace(&out.join("passphrase.txt"), "Saal 2", "pre.bin");
    assert!(run.status.success(), "{run:?}");
    let pre = PreTrace::decode(&std::fs::read(tmp.path().join("pre.bin")).unwrap()).unwrap();
    let traced = complete_trace(&pre, &authority, "Bitte testen", 5, to + 60).unwrap();
    assert_eq!(traced.view.room, "Saal 2");
    let visit = |c: &EntryCode| seal_visit(c, from + 600, from + 2400);
    assert_eq!(match_records(&visit(&codes[1]), &traced.warnings).len(), 1);
    assert!(match_records(&visit(&codes[0]), &traced.warnings).is_empty());

    let unknown = pre_trace(&out.join("passphrase.txt"), "Saal 3", "none.bin");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no room \"Saal 3\""));
    assert!(!tmp.path().join("none.bin").exists());
    let wrong = tmp.path().join("wrong.txt");
    std::fs::write(&wrong, "x".repeat(52)).unwrap();
    assert!(pre_trace(&wrong, "Saal 2", "wrong.bin").status.success());
    let pre = PreTrace::decode(&std::fs::read(tmp.path().join("wrong.bin")).unwrap()).unwrap();
    assert!(matches!(
        complete_trace(&pre, &authority, "x", 5, to + 60),
        Err(VenueError::TraceKeyInvalid { .. })
    ));
}

/// `--self-reported` (SPEC.md §12.11): from the gateway's saved keys, a poster
/// whose code carries the gateway's venue key and report key, and no secret.
#[test]
fn a_self_reported_poster_carries_the_gateways_keys_and_no_secret() {
    use traceless_protocol::venue::{self_reported_master, VenueKind};
    let tmp = tempfile::tempdir().unwrap();
    let gateway = GatewaySealKey::generate();
    let keys = tmp.path().join("gateway-keys.json");
    let mpk = self_reported_master(&gateway).public();
    std::fs::write(
        &keys,
        format!(
            r#"{{"origin":"x","seal_public_key":"{}","venue_public_key":"{}"}}"#,
            hex::encode(gateway.public_bytes()),
            hex::encode(mpk.to_bytes())
        ),
    )
    .unwrap();
    let out = tmp.path().join("gate");
    let run = Command::new(env!("CARGO_BIN_EXE_traceless-node"))
        .args(["venue", "create", "--name", "Hoftor Nord"])
        .args(["--address", "Gartenweg 2"])
        .arg("--self-reported")
        .arg(&keys)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2, "posters only");
    let code = the_code_on(&std::fs::read_to_string(out.join("poster.svg")).unwrap());
    assert_eq!(
        code.kind,
        VenueKind::SelfReported {
            report_key: gateway.public_bytes()
        }
    );
    assert_eq!(code.master_public, mpk);
    let svg = std::fs::read_to_string(out.join("poster.svg")).unwrap();
    assert!(
        svg.contains("their phone reports the visit"),
        "the poster says who warns"
    );
    assert!(!svg.contains("together publish"));
    // With an authority key too: refused, nothing written.
    let both = venue_create(
        &tmp.path().join("both"),
        "Hoftor",
        &gateway,
        &["--self-reported", keys.to_str().unwrap()],
    );
    assert!(!both.status.success());
    assert!(!tmp.path().join("both").exists());
}
