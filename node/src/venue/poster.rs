//! The poster a venue hangs at its door: an A4 page (SVG, and the same page in
//! HTML for printing from a browser) with the venue's name and address, the
//! entry QR code, the stay it suggests, and what a visitor's phone does and
//! does not give away.

use std::fmt::Write;

use qrcode::{Color, EcLevel, QrCode};
use traceless_protocol::venue::{EntryCode, VenueDescription, VenueKind};

use crate::clock::datetime_of_unix;

/// Page size, millimetres (A4 portrait).
const PAGE: (f64, f64) = (210.0, 297.0);
/// Side of the QR code with its quiet zone, millimetres.
const QR_SIDE: f64 = 150.0;
/// Top edge of the QR code, millimetres.
const QR_TOP: f64 = 48.0;
/// Quiet zone around the code, modules (ISO/IEC 18004 asks for 4).
const QUIET: usize = 4;

/// `&`, `<`, `>`, quotes escaped for XML text and attributes.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The QR code of `url`: error correction M, or L if the URL is too long for M.
fn qr(url: &str) -> Result<QrCode, String> {
    QrCode::with_error_correction_level(url, EcLevel::M)
        .or_else(|_| QrCode::with_error_correction_level(url, EcLevel::L))
        .map_err(|e| format!("the entry URL does not fit in a QR code: {e}"))
}

/// One SVG path of the dark modules, in module units.
fn modules_path(code: &QrCode) -> String {
    let width = code.width();
    let mut d = String::new();
    for (i, c) in code.to_colors().iter().enumerate() {
        if *c == Color::Dark {
            let (x, y) = (i % width + QUIET, i / width + QUIET);
            let _ = write!(d, "M{x} {y}h1v1h-1z");
        }
    }
    d
}

fn text(out: &mut String, y: f64, size: f64, weight: &str, line: &str) {
    let _ = writeln!(
        out,
        r#"  <text x="{}" y="{y}" font-size="{size}" font-weight="{weight}" text-anchor="middle">{}</text>"#,
        PAGE.0 / 2.0,
        xml(line)
    );
}

/// The poster as a standalone SVG document (millimetre units, A4).
pub fn poster_svg(entry: &EntryCode, url: &str) -> Result<String, String> {
    let venue = &entry.venue;
    let code = qr(url)?;
    let modules = code.width() + 2 * QUIET;
    let scale = QR_SIDE / modules as f64;
    let left = (PAGE.0 - QR_SIDE) / 2.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}mm" height="{h}mm" viewBox="0 0 {w} {h}" font-family="sans-serif" fill="#000">"##,
        w = PAGE.0,
        h = PAGE.1
    );
    let _ = writeln!(s, "  <title>Check in: {}</title>", xml(&venue.description));
    let _ = writeln!(
        s,
        r##"  <rect width="{}" height="{}" fill="#fff"/>"##,
        PAGE.0, PAGE.1
    );
    text(&mut s, 24.0, 11.0, "bold", &venue.description);
    text(&mut s, 33.0, 6.0, "normal", &venue.address);
    if !venue.room.is_empty() {
        text(&mut s, 41.0, 5.0, "normal", &venue.room);
    }
    let _ = writeln!(
        s,
        r##"  <g transform="translate({left} {QR_TOP}) scale({scale})" shape-rendering="crispEdges"><rect width="{modules}" height="{modules}" fill="#fff"/><path d="{}"/></g>"##,
        modules_path(&code)
    );
    let below = QR_TOP + QR_SIDE;
    text(
        &mut s,
        below + 12.0,
        7.0,
        "bold",
        "Scan with your phone to check in",
    );
    text(
        &mut s,
        below + 20.0,
        5.0,
        "normal",
        &format!(
            "Suggested stay {} min. Your phone checks out by itself after {} min.",
            venue.default_stay_minutes, venue.max_stay_minutes
        ),
    );
    if venue.valid_to != 0 {
        text(
            &mut s,
            below + 27.0,
            4.5,
            "normal",
            &format!(
                "This code is valid from {} to {}.",
                datetime_of_unix(venue.valid_from),
                datetime_of_unix(venue.valid_to)
            ),
        );
    }
    let who = match entry.kind {
        VenueKind::Basic => {
            "tests positive, the venue and the health authority together publish a warning for"
        }
        VenueKind::SelfReported { .. } => {
            "tests positive, their phone reports the visit and the authority publishes a warning for"
        }
    };
    for (i, line) in [
        "No register: your visit stays on your phone, sealed. This venue, its owner and",
        "no server receive a list of visitors or a time of arrival. If someone who was here",
        who,
        "that time, and only phones that were here then recognise it, on the phone itself.",
    ]
    .iter()
    .enumerate()
    {
        text(&mut s, below + 38.0 + 6.0 * i as f64, 4.2, "normal", line);
    }
    s.push_str("</svg>\n");
    Ok(s)
}

/// The same poster as a printable HTML page (the SVG inline, A4, no margins).
pub fn poster_html(venue: &VenueDescription, svg: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Check in: {}</title>\n\
         <style>@page {{ size: A4; margin: 0 }} body {{ margin: 0 }} \
         svg {{ display: block; width: 210mm; height: 297mm }}</style>\n\
         </head>\n<body>\n{svg}</body>\n</html>\n",
        xml(&venue.description)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_escaped() {
        assert_eq!(
            xml("Tom & <Jerry's> \"bar\""),
            "Tom &amp; &lt;Jerry&apos;s&gt; &quot;bar&quot;"
        );
    }
}
