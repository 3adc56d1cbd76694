//! SVG plots of a report (plotters, SVG backend only).

use std::path::Path;

use plotters::prelude::*;

use crate::report::Report;

pub(crate) type Series<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

pub(crate) fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    y_max: Option<f64>,
    series: &[Series<'_>],
) -> Result<(), String> {
    let x_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let y_max = y_max.unwrap_or_else(|| {
        series
            .iter()
            .flat_map(|s| s.1.iter().map(|p| p.1))
            .fold(1.0f64, f64::max)
            * 1.1
    });
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(|e| e.to_string())?;
    for (name, points, color) in series {
        let color = *color;
        let drawn = chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?;
        // Unnamed series (one per node) stay out of the legend.
        if !name.is_empty() {
            drawn
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

/// Writes every plot of `r` into `dir`; returns the file names.
pub fn write_all(r: &Report, dir: &Path) -> std::io::Result<Vec<String>> {
    let err = std::io::Error::other;
    let day = |f: &dyn Fn(&crate::report::Daily) -> f64| -> Vec<(f64, f64)> {
        r.daily.iter().map(|d| (f64::from(d.day), f(d))).collect()
    };
    let truth = r.outcome.truly_close.max(1) as f64;
    let mut names = Vec::new();
    line_chart(
        &dir.join("recall.svg"),
        "Notifications against ground truth",
        "simulated day",
        "fraction",
        Some(1.05),
        &[
            (
                "recall (notified & truly close / truly close at end)",
                day(&|d| f64::from(d.true_positives) / truth),
                BLUE,
            ),
            (
                "precision (notified & truly close / notified)",
                day(&|d| {
                    if d.notified == 0 {
                        0.0
                    } else {
                        f64::from(d.true_positives) / f64::from(d.notified)
                    }
                }),
                RED,
            ),
        ],
    )
    .map_err(err)?;
    names.push("recall.svg".to_owned());
    if r.checkins.adoption > 0.0 {
        let exposed = r.checkins.exposed_checked_in.max(1) as f64;
        line_chart(
            &dir.join("venue-recall.svg"),
            "Venue check-ins beside proximity: recall by day",
            "simulated day",
            "fraction",
            Some(1.05),
            &[
                (
                    "venue recall (venue row & overlapped a traced stay / overlapped, checked in)",
                    day(&|d| f64::from(d.venue_true_positives) / exposed),
                    BLUE,
                ),
                (
                    "proximity recall (notified & truly close / truly close)",
                    day(&|d| f64::from(d.true_positives) / truth),
                    RED,
                ),
            ],
        )
        .map_err(err)?;
        names.push("venue-recall.svg".to_owned());
    }
    line_chart(
        &dir.join("epidemic.svg"),
        "Infections, uploads and notifications per day",
        "simulated day",
        "people",
        None,
        &[
            ("new infections", day(&|d| f64::from(d.new_infections)), RED),
            ("uploads", day(&|d| f64::from(d.uploads)), BLUE),
            (
                "phones notified (cumulative)",
                day(&|d| f64::from(d.notified)),
                GREEN,
            ),
        ],
    )
    .map_err(err)?;
    names.push("epidemic.svg".to_owned());
    line_chart(
        &dir.join("download.svg"),
        "Download per phone per day (HTTP bytes)",
        "simulated day",
        "bytes",
        None,
        &[(
            "bytes per phone",
            day(&|d| d.download_bytes_per_phone),
            BLUE,
        )],
    )
    .map_err(err)?;
    names.push("download.svg".to_owned());
    for (param, file, x_desc) in [
        ("adoption", "sweep-adoption.svg", "app adoption"),
        ("initial_infected", "sweep-cases.svg", "initial infections"),
    ] {
        let pts: Vec<_> = r.sweep.iter().filter(|p| p.parameter == param).collect();
        if pts.is_empty() {
            continue;
        }
        let xy = |f: &dyn Fn(&crate::report::SweepPoint) -> f64| -> Vec<(f64, f64)> {
            let mut v: Vec<(f64, f64)> = pts.iter().map(|p| (p.value, f(p))).collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v
        };
        line_chart(
            &dir.join(file),
            &format!("Notification quality by {x_desc}"),
            x_desc,
            "fraction",
            Some(1.05),
            &[
                ("recall", xy(&|p| p.recall), BLUE),
                ("precision", xy(&|p| p.precision), RED),
                (
                    "close contacts notified (all people)",
                    xy(&|p| p.population_coverage),
                    GREEN,
                ),
            ],
        )
        .map_err(err)?;
        names.push(file.to_owned());
    }
    let cal = &r.calibration;
    if !cal.curves.is_empty() {
        // The default's and the baseline's curves and the grid's frontier, not
        // every setting (report.json has them all).
        let curve = |what: &str, p: &Option<crate::calibration::OperatingPoint>| {
            let p = p.as_ref()?;
            let c = cal.curves.iter().find(|c| c.setting == p.setting)?;
            let mut pts: Vec<(f64, f64)> = (0..cal.thresholds.len())
                .map(|t| cal.figures(c, t))
                .filter(|f| f.recall > 0.0)
                .map(|f| (f.recall, f.precision))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            Some((
                format!("{what} {} (at {})", c.setting.name, p.threshold),
                pts,
            ))
        };
        let frontier: Vec<(f64, f64)> = cal
            .frontier
            .iter()
            .map(|p| (p.figures.recall, p.figures.precision))
            .collect();
        type Named = (String, Vec<(f64, f64)>, RGBColor);
        let named: Vec<Named> = [
            (curve("default", &cal.default), BLUE),
            (curve("before:", &cal.baseline), RED),
        ]
        .into_iter()
        .filter_map(|(c, color)| c.map(|(name, pts)| (name, pts, color)))
        .collect();
        let mut series: Vec<Series<'_>> =
            vec![("frontier of all settings and thresholds", frontier, BLACK)];
        series.extend(named.iter().map(|(n, p, c)| (n.as_str(), p.clone(), *c)));
        line_chart(
            &dir.join("calibration-pr.svg"),
            "Precision against recall, one point per score threshold",
            "recall",
            "precision",
            Some(1.05),
            &series,
        )
        .map_err(err)?;
        names.push("calibration-pr.svg".to_owned());
    }
    if !r.privacy_sweep.is_empty() {
        let mut pts: Vec<(f64, f64)> = r
            .privacy_sweep
            .iter()
            .map(|p| (f64::from(p.sniffers), p.linked_fraction))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let seen: Vec<(f64, f64)> = r
            .privacy_sweep
            .iter()
            .map(|p| {
                (
                    f64::from(p.sniffers),
                    if p.uploaders == 0 {
                        0.0
                    } else {
                        p.seen as f64 / p.uploaders as f64
                    },
                )
            })
            .collect();
        line_chart(
            &dir.join("privacy.svg"),
            "Sniffers vs published keys (key form)",
            "sniffers",
            "fraction of uploaders",
            Some(1.05),
            &[
                ("path linked (2+ places by one key)", pts, RED),
                ("seen by a sniffer", seen, BLUE),
            ],
        )
        .map_err(err)?;
        names.push("privacy.svg".to_owned());
    }
    Ok(names)
}
