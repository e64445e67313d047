//! Line charts and a timeline as SVG, the pictures the evaluation draws.
//!
//! SVG keeps text as text, so plotters needs no font files (no `ttf` feature) and
//! the report's plots stay small and diffable.

use std::path::Path;

use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend's text.
    pub label: String,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
    /// Index into the palette; series that belong together share a colour.
    pub color: usize,
    /// Dashed, to tell a tail percentile from the median of the same colour.
    pub dashed: bool,
}

/// A chart: title, axis labels with units, and its lines.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Above the plot.
    pub title: String,
    /// Under the x axis, with the unit.
    pub x_label: String,
    /// Beside the y axis, with the unit.
    pub y_label: String,
    /// The lines; empty ones are left out.
    pub series: Vec<Series>,
}

/// Plot size in pixels: wide enough for a legend beside five lines.
const SIZE: (u32, u32) = (900, 540);

/// The colours of the lines, distinct on white and in greyscale print.
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(23, 23, 23),
];

/// What every picture has: a white ground, the title, room for the axes' labels
/// (`y_labels` pixels wide on the left).
fn frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
    y_labels: u32,
) -> Result<ChartBuilder<'a, 'b, SVGBackend<'b>>, DrawingAreaErrorKind<std::io::Error>> {
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(y_labels);
    Ok(builder)
}

/// The axes every picture shares: fonts, no minor grid lines, the x axis's text.
fn axes<'m, 'a, 'b, X: Ranged, Y: Ranged>(
    mesh: &'m mut MeshStyle<'a, 'b, X, Y, SVGBackend<'a>>,
    x_label: &str,
) -> &'m mut MeshStyle<'a, 'b, X, Y, SVGBackend<'a>> {
    mesh.x_desc(x_label)
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 14))
        .light_line_style(WHITE.mix(0.0))
}

/// Draws `chart` into the SVG file at `path`.
pub fn line_chart(path: &Path, chart: &Chart) -> Result<(), String> {
    let points = || chart.series.iter().flat_map(|s| s.points.iter().copied());
    let mut xs: Vec<f64> = points().map(|(x, _)| x).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let (Some(&x_min), Some(&x_max)) = (xs.first(), xs.last()) else {
        return Err(format!("no data to plot for {:?}", chart.title));
    };
    // The x axis is drawn in thousandths so that its ticks can sit exactly on the
    // measured values (plotters binds key points to integer axes only).
    const SCALE: f64 = 1000.0;
    let to_axis = |x: f64| (x * SCALE).round() as i64;
    let pad = ((to_axis(x_max) - to_axis(x_min)) / 20).max(50);
    let x_range = (to_axis(x_min) - pad)..(to_axis(x_max) + pad);
    let ticks: Vec<i64> = xs.iter().map(|&x| to_axis(x)).collect();
    // Room above the highest point for the legend in the upper left: about 20 px a
    // line out of the plot's height less caption and x labels.
    let y_max = points().map(|(_, y)| y).fold(0.0, f64::max);
    let legend_share = (chart.series.len() as f64 * 20.0 + 30.0) / f64::from(SIZE.1 - 130);
    let y_top = if y_max > 0.0 {
        y_max / (0.95 - legend_share).max(0.3)
    } else {
        1.0
    };
    let y_range = 0.0..y_top;

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    let draw = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", path.display());
    let mut ctx = frame(&root, &chart.title, 70)
        .map_err(|e| draw(&e))?
        .build_cartesian_2d(x_range.with_key_points(ticks), y_range)
        .map_err(|e| draw(&e))?;
    let x_format = |x: &i64| format!("{}", *x as f64 / SCALE);
    let y_format = |y: &f64| {
        if y_top >= 10.0 {
            format!("{y:.0}")
        } else {
            format!("{y:.1}")
        }
    };
    axes(&mut ctx.configure_mesh(), &chart.x_label)
        .y_desc(&chart.y_label)
        .x_label_formatter(&x_format)
        .y_label_formatter(&y_format)
        .draw()
        .map_err(|e| draw(&e))?;

    for series in chart.series.iter().filter(|s| !s.points.is_empty()) {
        let color = COLORS[series.color % COLORS.len()];
        let on_axis: Vec<(i64, f64)> = series
            .points
            .iter()
            .map(|&(x, y)| (to_axis(x), y))
            .collect();
        let style = color.stroke_width(2);
        let drawn = if series.dashed {
            ctx.draw_series(DashedLineSeries::new(on_axis.clone(), 8, 5, style))
        } else {
            ctx.draw_series(LineSeries::new(on_axis.clone(), style))
        };
        let dashed = series.dashed;
        drawn
            .map_err(|e| draw(&e))?
            .label(&series.label)
            .legend(move |(x, y)| {
                let line = vec![(x, y), (x + 24, y)];
                if dashed {
                    DashedPathElement::new(line, 6, 4, style).into_dyn()
                } else {
                    PathElement::new(line, style).into_dyn()
                }
            });
        ctx.draw_series(on_axis.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| draw(&e))?;
    }
    ctx.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| draw(&e))?;
    root.present().map_err(|e| draw(&e))
}

/// A timeline: one row per product, a bar over each stretch of time it was cached.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// Above the plot.
    pub title: String,
    /// Under the x axis, with the unit.
    pub x_label: String,
    /// The rows, top first.
    pub rows: Vec<String>,
    /// `(row, from, to)`: a bar on row `row` from x `from` to x `to`.
    pub bars: Vec<(usize, f64, f64)>,
    /// `(x, text)`: a vertical line across every row at x, with its text at the top.
    pub marks: Vec<(f64, String)>,
}

/// Units of the y axis per row: bars are drawn from 2 to 8 within their 10, so
/// that neighbouring rows stay apart, and the row's name sits at 5.
const ROW: i64 = 10;

/// Draws `timeline` into the SVG file at `path`.
pub fn timeline_chart(path: &Path, timeline: &Timeline) -> Result<(), String> {
    let n = timeline.rows.len() as i64;
    let x_max = timeline
        .bars
        .iter()
        .map(|&(_, _, to)| to)
        .chain(timeline.marks.iter().map(|&(x, _)| x))
        .fold(0.0, f64::max);
    if n == 0 || x_max <= 0.0 {
        return Err(format!("no data to plot for {:?}", timeline.title));
    }
    // The first row at the top: row i spans ROW·(n-1-i) to ROW·(n-i), and the
    // marks' texts get one more row's height above the last.
    let y_of = |row: usize| ROW * (n - 1 - row as i64);
    let ticks: Vec<i64> = (0..n).map(|i| i * ROW + ROW / 2).collect();
    let height = SIZE.1.max(130 + 28 * n as u32);
    let root = SVGBackend::new(path, (SIZE.0, height)).into_drawing_area();
    let draw = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", path.display());
    let mut ctx = frame(&root, &timeline.title, 110)
        .map_err(|e| draw(&e))?
        .build_cartesian_2d(0.0..x_max * 1.01, (0..ROW * (n + 1)).with_key_points(ticks))
        .map_err(|e| draw(&e))?;
    let rows = &timeline.rows;
    let y_format = |y: &i64| {
        let row = n - 1 - y.div_euclid(ROW);
        usize::try_from(row)
            .ok()
            .and_then(|row| rows.get(row))
            .cloned()
            .unwrap_or_default()
    };
    axes(&mut ctx.configure_mesh(), &timeline.x_label)
        .y_label_formatter(&y_format)
        .draw()
        .map_err(|e| draw(&e))?;
    let top = ROW * (n + 1);
    ctx.draw_series(
        timeline.marks.iter().map(|&(x, _)| {
            PathElement::new(vec![(x, 0), (x, top)], BLACK.mix(0.35).stroke_width(1))
        }),
    )
    .map_err(|e| draw(&e))?;
    ctx.draw_series(
        timeline.marks.iter().map(|(x, text)| {
            Text::new(text.clone(), (*x, top - 2), ("sans-serif", 13).into_font())
        }),
    )
    .map_err(|e| draw(&e))?;
    ctx.draw_series(timeline.bars.iter().map(|&(row, from, to)| {
        let color = COLORS[row % COLORS.len()];
        Rectangle::new([(from, y_of(row) + 2), (to, y_of(row) + 8)], color.filled())
    }))
    .map_err(|e| draw(&e))?;
    root.present().map_err(|e| draw(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws with `draw` into a new file and returns the SVG, after checking that
    /// it holds every one of `texts`.
    fn drawn(draw: impl FnOnce(&Path) -> Result<(), String>, texts: &[&str]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("picture.svg");
        draw(&path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        for text in texts {
            assert!(svg.contains(text), "{text} missing");
        }
        svg
    }

    #[test]
    fn writes_an_svg_with_title_labels_and_legend() {
        let chart = Chart {
            title: "Query latency vs p".into(),
            x_label: "buy probability p".into(),
            y_label: "latency (ms)".into(),
            series: vec![
                Series {
                    label: "1 client".into(),
                    points: vec![(0.0, 1.0), (0.5, 2.0)],
                    color: 0,
                    dashed: false,
                },
                Series {
                    label: "p99".into(),
                    points: vec![(0.0, 3.0), (0.5, 4.0)],
                    color: 0,
                    dashed: true,
                },
                Series {
                    label: "empty".into(),
                    points: vec![],
                    color: 1,
                    dashed: false,
                },
            ],
        };
        let texts = [
            "Query latency vs p",
            "buy probability p",
            "latency (ms)",
            "1 client",
            "p99",
        ];
        let svg = drawn(|path| line_chart(path, &chart), &texts);
        assert!(!svg.contains("empty"));
        let nothing = Chart {
            series: vec![],
            ..chart
        };
        // Refused before any file is made, so the path is never written.
        assert!(line_chart(Path::new("/nonexistent/none.svg"), &nothing).is_err());
    }

    #[test]
    fn a_timeline_has_a_row_per_product_and_a_bar_per_stretch() {
        let timeline = Timeline {
            title: "Cached products".into(),
            x_label: "seconds".into(),
            rows: vec!["Tux".into(), "Whale".into(), "Bird".into()],
            bars: vec![(0, 0.0, 1.0), (0, 1.5, 2.0), (1, 0.5, 2.0)],
            marks: vec![(0.0, "p = 0".into()), (1.0, "p = 0.5".into())],
        };
        let texts = [
            "Cached products",
            "seconds",
            "Tux",
            "Whale",
            "Bird",
            "p = 0.5",
        ];
        let svg = drawn(|path| timeline_chart(path, &timeline), &texts);
        // Three bars, filled: one rect each, besides the background.
        assert_eq!(svg.matches("<rect").count(), 4, "{svg}");
        let nothing = Timeline {
            bars: vec![],
            marks: vec![],
            ..timeline
        };
        assert!(timeline_chart(Path::new("/nonexistent/none.svg"), &nothing).is_err());
    }
}
