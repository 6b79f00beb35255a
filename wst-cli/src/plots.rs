//! PNG plots (plotters): the reward/uplift curve of a run, evaluation bars with confidence
//! intervals, and the harmless/helpful Pareto frontier of the HH-RLHF evaluation.
//!
//! Each plot is drawn into an RGB buffer first (so tests can inspect pixels) and then written
//! atomically as a PNG.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

/// Width and height of every plot, in pixels.
pub const SIZE: (u32, u32) = (960, 560);

/// Colours of the series, in order.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One step of a training curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// Optimiser step.
    pub step: u64,
    /// Mean student reward with the teacher's instructions.
    pub reward: f64,
    /// Mean of reward minus the student's baseline.
    pub uplift: f64,
}

/// One bar of an evaluation chart: a condition, its mean and its 95% interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Condition label (e.g. `student alone`).
    pub label: String,
    /// Mean score.
    pub mean: f64,
    /// Lower end of the 95% confidence interval.
    pub lo: f64,
    /// Upper end of the 95% confidence interval.
    pub hi: f64,
}

/// One point of a Pareto plot: a condition evaluated at one helpfulness weight.
#[derive(Debug, Clone, PartialEq)]
pub struct ParetoPoint {
    /// Condition label.
    pub condition: String,
    /// Helpfulness weight `w` the teacher was run with.
    pub weight: f64,
    /// Mean harmlessness score.
    pub harmless: f64,
    /// Mean helpfulness score.
    pub helpful: f64,
}

/// Draws the legend of the labelled series at `position`.
fn draw_legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, CT>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font(("sans-serif", 18))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

fn draw_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("plot: {e}")
}

fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.1).max(0.05);
    (lo - pad, hi + pad)
}

/// Draws the reward and uplift per step into `buf` (RGB, [`SIZE`]).
pub fn draw_curve(buf: &mut [u8], title: &str, points: &[CurvePoint]) -> Result<()> {
    let root = BitMapBackend::with_buffer(buf, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let x_max = points.iter().map(|p| p.step).max().unwrap_or(1).max(1);
    let (y0, y1) = padded_range(points.iter().flat_map(|p| [p.reward, p.uplift, 0.0]));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 26))
        .margin(18)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0u64..x_max, y0..y1)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("training step")
        .y_desc("mean reward")
        .axis_desc_style(("sans-serif", 20))
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(draw_err)?;
    chart
        .draw_series(LineSeries::new([(0, 0.0), (x_max, 0.0)], BLACK.mix(0.4)))
        .map_err(draw_err)?;
    let series = [
        ("reward with instructions", PALETTE[0], 0usize),
        ("uplift over student alone", PALETTE[1], 1usize),
    ];
    for (name, color, which) in series {
        let pts: Vec<(u64, f64)> = points
            .iter()
            .map(|p| (p.step, if which == 0 { p.reward } else { p.uplift }))
            .filter(|(_, v)| v.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(3)))
            .map_err(draw_err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(draw_err)?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.present().map_err(draw_err)?;
    Ok(())
}

/// Draws one bar per condition with its 95% interval as a whisker into `buf`.
pub fn draw_bars(buf: &mut [u8], title: &str, y_desc: &str, bars: &[Bar]) -> Result<()> {
    let root = BitMapBackend::with_buffer(buf, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let n = bars.len().max(1) as u32;
    let (mut y0, y1) = padded_range(bars.iter().flat_map(|b| [b.lo, b.hi, b.mean]));
    y0 = y0.min(0.0);
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 26))
        .margin(18)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d((0u32..n).into_segmented(), y0..y1)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n as usize)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc(y_desc)
        .axis_desc_style(("sans-serif", 20))
        .label_style(("sans-serif", 17))
        .draw()
        .map_err(draw_err)?;
    for (i, b) in bars.iter().enumerate() {
        let i = i as u32;
        let color = PALETTE[i as usize % PALETTE.len()];
        let mut rect = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), b.mean),
            ],
            color.filled(),
        );
        rect.set_margin(0, 0, 30, 30);
        chart.draw_series([rect]).map_err(draw_err)?;
        let c = SegmentValue::CenterOf(i);
        chart
            .draw_series([PathElement::new(
                vec![(c.clone(), b.lo), (c.clone(), b.hi)],
                BLACK.stroke_width(2),
            )])
            .map_err(draw_err)?;
        chart
            .draw_series([b.lo, b.hi].map(|y| {
                EmptyElement::at((c.clone(), y))
                    + PathElement::new(vec![(-10, 0), (10, 0)], BLACK.stroke_width(2))
            }))
            .map_err(draw_err)?;
        chart
            .draw_series([EmptyElement::at((c.clone(), b.hi))
                + Text::new(
                    format!("{:.3}", b.mean),
                    (-18, -22),
                    ("sans-serif", 16).into_font(),
                )])
            .map_err(draw_err)?;
    }
    root.present().map_err(draw_err)?;
    Ok(())
}

/// Draws mean harmless (x) against mean helpful (y) per condition, one line per condition
/// through its helpfulness weights, each point labelled with its weight.
pub fn draw_pareto(buf: &mut [u8], title: &str, points: &[ParetoPoint]) -> Result<()> {
    let root = BitMapBackend::with_buffer(buf, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let (x0, x1) = padded_range(points.iter().map(|p| p.harmless));
    let (y0, y1) = padded_range(points.iter().map(|p| p.helpful));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 26))
        .margin(18)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("mean harmlessness score")
        .y_desc("mean helpfulness score")
        .axis_desc_style(("sans-serif", 20))
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(draw_err)?;
    let mut conditions: Vec<&str> = Vec::new();
    for p in points {
        if !conditions.contains(&p.condition.as_str()) {
            conditions.push(&p.condition);
        }
    }
    for (ci, cond) in conditions.iter().enumerate() {
        let color = PALETTE[ci % PALETTE.len()];
        let mut pts: Vec<&ParetoPoint> = points.iter().filter(|p| p.condition == *cond).collect();
        pts.sort_by(|a, b| a.weight.total_cmp(&b.weight));
        let xy: Vec<(f64, f64)> = pts.iter().map(|p| (p.harmless, p.helpful)).collect();
        chart
            .draw_series(LineSeries::new(xy.clone(), color.stroke_width(2)))
            .map_err(draw_err)?
            .label(cond.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
        chart
            .draw_series(pts.iter().map(|p| {
                EmptyElement::at((p.harmless, p.helpful))
                    + Circle::new((0, 0), 5, color.filled())
                    + Text::new(
                        format!("w={}", p.weight),
                        (8, -16),
                        ("sans-serif", 15).into_font(),
                    )
            }))
            .map_err(draw_err)?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerLeft)?;
    root.present().map_err(draw_err)?;
    Ok(())
}

/// A blank RGB buffer of [`SIZE`].
pub fn new_buffer() -> Vec<u8> {
    vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize]
}

/// Writes an RGB buffer of [`SIZE`] as a PNG, atomically (temp file + rename).
pub fn save_png(buf: &[u8], path: &Path) -> Result<()> {
    // The backend picks the encoder from the extension: the temp name must end in `.png`.
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp.png", std::process::id()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    {
        let root = BitMapBackend::new(&tmp, SIZE).into_drawing_area();
        root.draw(
            &plotters::element::BitMapElement::<_>::with_owned_buffer((0, 0), SIZE, buf.to_vec())
                .ok_or_else(|| anyhow!("plot buffer has the wrong size"))?,
        )
        .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Counts the pixels of `buf` within a small distance of `color` (tests and sanity checks).
#[cfg(test)]
pub fn count_pixels(buf: &[u8], color: RGBColor) -> usize {
    buf.chunks_exact(3)
        .filter(|p| {
            (p[0] as i32 - color.0 as i32).abs() < 8
                && (p[1] as i32 - color.1 as i32).abs() < 8
                && (p[2] as i32 - color.2 as i32).abs() < 8
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_draws_both_series_and_saves_a_png() {
        let pts: Vec<CurvePoint> = (0..20)
            .map(|s| CurvePoint {
                step: s,
                reward: 0.3 + 0.02 * s as f64,
                uplift: 0.01 * s as f64,
            })
            .collect();
        let mut buf = new_buffer();
        draw_curve(&mut buf, "demo", &pts).unwrap();
        assert!(count_pixels(&buf, PALETTE[0]) > 300);
        assert!(count_pixels(&buf, PALETTE[1]) > 300);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curve.png");
        save_png(&buf, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(!dir.path().join("curve.png.tmp").exists());
    }

    #[test]
    fn bars_have_heights_in_proportion() {
        let bars = vec![
            Bar {
                label: "student alone".into(),
                mean: 0.2,
                lo: 0.1,
                hi: 0.3,
            },
            Bar {
                label: "trained teacher".into(),
                mean: 0.8,
                lo: 0.7,
                hi: 0.9,
            },
        ];
        let mut buf = new_buffer();
        draw_bars(&mut buf, "eval", "accuracy", &bars).unwrap();
        let a = count_pixels(&buf, PALETTE[0]);
        let b = count_pixels(&buf, PALETTE[1]);
        assert!(a > 1000 && b > 3 * a, "bar pixels {a} {b}");
    }

    #[test]
    fn pareto_draws_each_condition() {
        let mut pts = Vec::new();
        for (c, off) in [("untrained", 0.0), ("trained", 0.5)] {
            for w in [0.5, 0.7, 0.9] {
                pts.push(ParetoPoint {
                    condition: c.into(),
                    weight: w,
                    harmless: 1.0 - w + off,
                    helpful: w + off,
                });
            }
        }
        let mut buf = new_buffer();
        draw_pareto(&mut buf, "pareto", &pts).unwrap();
        assert!(count_pixels(&buf, PALETTE[0]) > 100);
        assert!(count_pixels(&buf, PALETTE[1]) > 100);
    }
}
