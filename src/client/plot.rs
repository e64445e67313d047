//! Line charts as SVG, the one kind of picture the evaluation draws.
//!
//! SVG keeps text as text, so plotters needs no font files (no `ttf` feature) and
//! the report's plots stay small and diffable.

use std::path::Path;

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

/// Draws `chart` into the SVG file at `path`.
pub fn line_chart(path: &Path, chart: &Chart) -> Result<(), String> {
    let points = || chart.series.iter().flat_map(|s| s.points.iter().copied());
    let (x_min, x_max) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (x, _)| {
        (lo.min(x), hi.max(x))
    });
    if !x_min.is_finite() {
        return Err(format!("no data to plot for {:?}", chart.title));
    }
    let y_max = points().map(|(_, y)| y).fold(0.0, f64::max);
    // A little room on both sides of x, and above the highest point for the legend.
    let x_pad = ((x_max - x_min) * 0.05).max(0.05);
    let x_range = (x_min - x_pad)..(x_max + x_pad);
    let y_range = 0.0..(if y_max > 0.0 { y_max * 1.25 } else { 1.0 });
    let integer_x = points().all(|(x, _)| x.fract() == 0.0);
    let distinct_x = {
        let mut xs: Vec<f64> = points().map(|(x, _)| x).collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        xs.len()
    };

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    let draw = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| draw(&e))?;
    let mut ctx = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, y_range)
        .map_err(|e| draw(&e))?;
    let x_format = |x: &f64| {
        if integer_x {
            format!("{x:.0}")
        } else {
            format!("{x:.1}")
        }
    };
    ctx.configure_mesh()
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .x_labels(if integer_x { distinct_x + 2 } else { 10 })
        .x_label_formatter(&x_format)
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| draw(&e))?;

    for series in chart.series.iter().filter(|s| !s.points.is_empty()) {
        let color = COLORS[series.color % COLORS.len()];
        let style = color.stroke_width(2);
        let drawn = if series.dashed {
            ctx.draw_series(DashedLineSeries::new(series.points.clone(), 8, 5, style))
        } else {
            ctx.draw_series(LineSeries::new(series.points.clone(), style))
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
        ctx.draw_series(
            series
                .points
                .iter()
                .map(|&p| Circle::new(p, 3, color.filled())),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_title_labels_and_legend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.svg");
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
        line_chart(&path, &chart).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        for text in [
            "Query latency vs p",
            "buy probability p",
            "latency (ms)",
            "1 client",
            "p99",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        assert!(!svg.contains("empty"));
        let nothing = Chart {
            series: vec![],
            ..chart
        };
        assert!(line_chart(&path, &nothing).is_err());
    }
}
