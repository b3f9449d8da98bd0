//! Metric charts that tell the truth: one inline SVG per metric key with every run's series
//! overlaid, downsampled to ~1,000 points per series keeping each bucket's min and max (a
//! spike survives, a 50,000-step run stays a line, not a band), "nice" ticks and gridlines
//! whose labels are measured before the plot's left edge is placed (so `28029.790889` is
//! never cut), optional EMA smoothing, step or relative-time x, and a log y. A metric with
//! one point per run is a number, so it goes in a table, not a chart.

use std::collections::BTreeMap;

use maud::{html, Markup};
use repro_core::metrics::MetricPoint;

use super::layout::count;
use super::{enc, fmt_num};

/// Points kept per series (two per bucket: its min and its max).
const MAX_POINTS: usize = 1000;

/// Colour-blind-safe (Okabe–Ito), then greys: one per run, in order.
const PALETTE: [&str; 9] =
    ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000", "#999999"];

pub(crate) fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum XAxis {
    Step,
    /// Seconds since the series' first point.
    Time,
}

/// How charts are drawn, from the page's query (`?smooth=0.6&x=time&logy=1`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ChartOpts {
    /// EMA weight in [0, 1): 0 draws the raw values only.
    pub(crate) smooth: f64,
    pub(crate) x: XAxis,
    pub(crate) logy: bool,
}

impl Default for ChartOpts {
    fn default() -> Self {
        ChartOpts { smooth: 0.0, x: XAxis::Step, logy: false }
    }
}

impl ChartOpts {
    /// Bad values are one line saying what is accepted (the page answers 400 with it).
    pub(crate) fn from_query(q: &BTreeMap<String, String>) -> Result<ChartOpts, String> {
        let mut o = ChartOpts::default();
        if let Some(s) = q.get("smooth").filter(|s| !s.is_empty()) {
            o.smooth = s
                .parse::<f64>()
                .ok()
                .filter(|v| (0.0..1.0).contains(v))
                .ok_or_else(|| format!("smooth={s} is not a number from 0 to 0.99 (0: no smoothing)"))?;
        }
        match q.get("x").map(String::as_str) {
            None | Some("") | Some("step") => {}
            Some("time") => o.x = XAxis::Time,
            Some(other) => return Err(format!("x={other} is neither step nor time")),
        }
        match q.get("logy").map(String::as_str) {
            None | Some("") | Some("0") | Some("false") => {}
            Some("1") | Some("true") | Some("on") => o.logy = true,
            Some(other) => return Err(format!("logy={other} is not 1 or 0")),
        }
        Ok(o)
    }

    /// The options as query pairs, for links that keep them.
    pub(crate) fn query(&self) -> String {
        let mut q = Vec::new();
        if self.smooth > 0.0 {
            q.push(format!("smooth={}", self.smooth));
        }
        if self.x == XAxis::Time {
            q.push("x=time".into());
        }
        if self.logy {
            q.push("logy=1".into());
        }
        q.join("&")
    }
}

/// One run's points (all keys), with how it is labelled and linked.
pub(crate) struct Series<'a> {
    pub(crate) label: String,
    pub(crate) href: Option<String>,
    pub(crate) points: &'a [MetricPoint],
}

/// The plain GET form that sets smoothing, x and log y, keeping `keep` (other query pairs).
pub(crate) fn chart_controls(opts: &ChartOpts, action: &str, keep: &[(&str, &str)]) -> Markup {
    html! {
        form.inline.chart-controls method="get" action=(action) {
            @for (k, v) in keep { input type="hidden" name=(k) value=(v); }
            label { "Smoothing " input type="number" name="smooth" min="0" max="0.99" step="0.05" value=(opts.smooth) style="width:5em"; }
            " "
            label { "x " select name="x" {
                option value="step" selected[opts.x == XAxis::Step] { "step" }
                option value="time" selected[opts.x == XAxis::Time] { "time" }
            } }
            " "
            label { input type="checkbox" name="logy" value="1" checked[opts.logy]; " log y" }
            " "
            button type="submit" { "Apply" }
        }
    }
}

/// Every metric of the runs: an overlay chart per key that has ≥ 2 points in some run, and
/// one table of the keys that have at most one point in every run.
pub(crate) fn metric_section(series: &[Series], opts: &ChartOpts) -> Markup {
    // key → per run: its points of that key, in step (then time) order.
    let mut keys: BTreeMap<&str, Vec<Vec<&MetricPoint>>> = BTreeMap::new();
    for (i, s) in series.iter().enumerate() {
        for p in s.points {
            let per_run = keys.entry(p.key.as_str()).or_insert_with(|| vec![Vec::new(); series.len()]);
            per_run[i].push(p);
        }
    }
    for per_run in keys.values_mut() {
        for pts in per_run.iter_mut() {
            pts.sort_by_key(|p| (p.step, p.timestamp_ms));
        }
    }
    let (charted, single): (Vec<_>, Vec<_>) =
        keys.iter().partition(|(_, per_run)| per_run.iter().any(|p| p.len() >= 2));
    html! {
        @if keys.is_empty() { p.muted { "no metrics" } }
        @if !single.is_empty() {
            div.scroll {
                table #single-metrics {
                    tr { th { "Metric" } @for s in series { th { (s.label) } } }
                    @for (key, per_run) in &single {
                        tr {
                            td { code { (key) } }
                            @for pts in per_run.iter() {
                                td.num { @match pts.first() { Some(p) => (fmt_num(p.value)), None => span.muted { "—" } } }
                            }
                        }
                    }
                }
            }
        }
        div.charts {
            @for (key, per_run) in &charted {
                (chart(key, series, per_run, opts))
            }
        }
    }
}

/// Keeps at most `MAX_POINTS` of `pts` (x-sorted): per bucket of equal x-width its first
/// point's min and max by value, in x order, so every peak and trough survives.
pub(crate) fn downsample(pts: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if pts.len() <= MAX_POINTS {
        return pts.to_vec();
    }
    let buckets = MAX_POINTS / 2;
    let (x0, x1) = (pts[0].0, pts[pts.len() - 1].0);
    let width = (x1 - x0) / buckets as f64;
    let mut out = Vec::with_capacity(MAX_POINTS + 2);
    let mut i = 0;
    while i < pts.len() {
        let b = if width > 0.0 { (((pts[i].0 - x0) / width) as usize).min(buckets - 1) } else { 0 };
        let (mut lo, mut hi) = (pts[i], pts[i]);
        let mut j = i;
        while j < pts.len() {
            let bj = if width > 0.0 { (((pts[j].0 - x0) / width) as usize).min(buckets - 1) } else { 0 };
            if bj != b {
                break;
            }
            if pts[j].1 < lo.1 {
                lo = pts[j];
            }
            if pts[j].1 > hi.1 {
                hi = pts[j];
            }
            j += 1;
        }
        if lo.0 <= hi.0 {
            out.push(lo);
            if hi != lo {
                out.push(hi);
            }
        } else {
            out.push(hi);
            out.push(lo);
        }
        i = j;
    }
    out
}

/// Ticks at 1, 2 or 5 × 10^k covering [lo, hi], about `n` of them.
pub(crate) fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    let mut out = Vec::new();
    let mut t = first;
    while t <= hi + step * 1e-9 && out.len() < 50 {
        // -0.0 and float noise (0.30000000000000004) would show in labels.
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { (t / step).round() * step });
        t += step;
    }
    out
}

/// A tick label: every digit before the point kept, thousands grouped; as few decimals as
/// the tick step needs; scientific only past 1e9 or below 1e-4.
pub(crate) fn tick_label(v: f64, step: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-4..1e9).contains(&a) {
        return format!("{v:.2e}");
    }
    let decimals = if step >= 1.0 || step <= 0.0 { 0 } else { (-step.log10().floor()) as usize }.min(6);
    let s = format!("{v:.decimals$}");
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

const W: f64 = 520.0;
const H: f64 = 240.0;
const TOP: f64 = 12.0;
const RIGHT: f64 = 14.0;
const BOTTOM: f64 = 34.0;
/// One run's points in data coordinates (x, y).
type Line = Vec<(f64, f64)>;
/// Width of one label character at the 10 px font, generous for digits and commas.
const CHAR_W: f64 = 6.4;

fn chart(key: &str, series: &[Series], per_run: &[Vec<&MetricPoint>], opts: &ChartOpts) -> Markup {
    let mut skipped = 0usize;
    let mut nonpositive = 0usize;
    // Per run: (x, y) after x choice, non-finite and (log) non-positive dropped, smoothed.
    let lines: Vec<(Line, Line)> = per_run
        .iter()
        .map(|pts| {
            let t0 = pts.iter().filter_map(|p| p.timestamp_ms).min();
            let mut raw = Vec::with_capacity(pts.len());
            for p in pts {
                if !p.value.is_finite() {
                    skipped += 1;
                    continue;
                }
                if opts.logy && p.value <= 0.0 {
                    nonpositive += 1;
                    continue;
                }
                let x = match (opts.x, p.timestamp_ms, t0) {
                    (XAxis::Time, Some(t), Some(t0)) => (t - t0) as f64 / 1000.0,
                    _ => p.step as f64,
                };
                raw.push((x, if opts.logy { p.value.log10() } else { p.value }));
            }
            raw.sort_by(|a, b| a.0.total_cmp(&b.0));
            let smooth = if opts.smooth > 0.0 {
                let mut acc: Option<f64> = None;
                raw.iter()
                    .map(|&(x, y)| {
                        let v = acc.map_or(y, |a| a * opts.smooth + y * (1.0 - opts.smooth));
                        acc = Some(v);
                        (x, v)
                    })
                    .collect()
            } else {
                Vec::new()
            };
            (downsample(&raw), downsample(&smooth))
        })
        .collect();
    let all = || lines.iter().flat_map(|(r, _)| r.iter());
    let (mut x0, mut x1) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (mut y0, mut y1) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let empty = !x0.is_finite();
    if empty {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 <= f64::EPSILON * y0.abs().max(1.0) {
        // A constant series: a small range around its value, not an invented ±0.5.
        let pad = (y0.abs() * 0.01).max(1e-9);
        (y0, y1) = (y0 - pad, y1 + pad);
    } else {
        let pad = (y1 - y0) * 0.05;
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    let yticks = nice_ticks(y0, y1, 5);
    let ystep = if yticks.len() > 1 { yticks[1] - yticks[0] } else { (y1 - y0).abs() };
    let ylabel =
        |v: f64| if opts.logy { tick_label(10f64.powf(v), 10f64.powf(v) / 10.0) } else { tick_label(v, ystep) };
    let labels: Vec<String> = yticks.iter().map(|&v| ylabel(v)).collect();
    let left = 10.0 + labels.iter().map(|l| l.chars().count()).max().unwrap_or(1) as f64 * CHAR_W;
    let xticks = nice_ticks(x0, x1, 6);
    let xstep = if xticks.len() > 1 { xticks[1] - xticks[0] } else { 1.0 };
    let sx = |x: f64| left + (x - x0) / (x1 - x0) * (W - left - RIGHT);
    let sy = |y: f64| TOP + (1.0 - (y - y0) / (y1 - y0)) * (H - TOP - BOTTOM);
    let path = |pts: &[(f64, f64)]| -> String {
        let mut d = String::with_capacity(pts.len() * 14);
        for (i, &(x, y)) in pts.iter().enumerate() {
            d.push_str(&format!("{}{:.1},{:.1}", if i == 0 { "M" } else { "L" }, sx(x), sy(y)));
        }
        d
    };
    let npoints: usize = per_run.iter().map(Vec::len).sum();
    let last: Vec<Option<f64>> = per_run.iter().map(|p| p.last().map(|p| p.value)).collect();
    let xname = match opts.x {
        XAxis::Step => "step",
        XAxis::Time => "seconds since the first point",
    };
    html! {
        figure.chart data-metric=(key) {
            figcaption {
                b { (key) } " "
                span.muted {
                    (count(npoints, "point", "points"))
                    @if series.len() == 1 { @if let Some(Some(v)) = last.first() { " · last " (fmt_num(*v)) } }
                    @if opts.logy { " · log scale" }
                    @if skipped > 0 { " · " (count(skipped, "non-finite value", "non-finite values")) " not drawn" }
                    @if nonpositive > 0 { " · " (nonpositive) " ≤ 0 not drawn on a log scale" }
                }
            }
            svg.metric-chart xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (W) " " (H) } role="img"
                aria-label={ (key) " over " (xname) } {
                title { (key) " over " (xname) }
                rect x=(left) y=(TOP) width=(W - left - RIGHT) height=(H - TOP - BOTTOM) fill="#fff" stroke="#d8dce3" {}
                @for (v, label) in yticks.iter().zip(&labels) {
                    line x1=(left) x2=(W - RIGHT) y1=(format!("{:.1}", sy(*v))) y2=(format!("{:.1}", sy(*v))) stroke="#eceef2" {}
                    text.ytick x=(left - 4.0) y=(format!("{:.1}", sy(*v) + 3.5)) font-size="10" text-anchor="end" fill="#51596b" { (label) }
                }
                @for v in &xticks {
                    line x1=(format!("{:.1}", sx(*v))) x2=(format!("{:.1}", sx(*v))) y1=(TOP) y2=(H - BOTTOM) stroke="#eceef2" {}
                    text x=(format!("{:.1}", sx(*v))) y=(H - BOTTOM + 13.0) font-size="10" text-anchor="middle" fill="#51596b" { (tick_label(*v, xstep)) }
                }
                text x=(W - RIGHT) y=(H - 4.0) font-size="10" text-anchor="end" fill="#687083" { (xname) }
                @if empty { text x=(left + 8.0) y=(TOP + 20.0) fill="#687083" { "no finite values" } }
                @for (i, (raw, smooth)) in lines.iter().enumerate() {
                    @if smooth.is_empty() {
                        path d=(path(raw)) fill="none" stroke=(colour(i)) stroke-width="1.6" {}
                    } @else {
                        path d=(path(raw)) fill="none" stroke=(colour(i)) stroke-width="1" stroke-opacity="0.3" {}
                        path d=(path(smooth)) fill="none" stroke=(colour(i)) stroke-width="1.8" {}
                    }
                    @if raw.len() == 1 {
                        circle cx=(format!("{:.1}", sx(raw[0].0))) cy=(format!("{:.1}", sy(raw[0].1))) r="3" fill=(colour(i)) {}
                    }
                }
            }
            @if series.len() > 1 {
                ul.legend {
                    @for (i, s) in series.iter().enumerate() {
                        @if !per_run[i].is_empty() {
                            li {
                                span.swatch style={ "background:" (colour(i)) } {} " "
                                @match &s.href { Some(h) => a href=(h) { (s.label) }, None => (s.label) }
                                @if let Some(v) = last[i] { " " span.muted { (fmt_num(v)) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A link to `path` with the chart options and `extra` pairs.
pub(crate) fn with_opts(path: &str, opts: &ChartOpts, extra: &[(&str, &str)]) -> String {
    let mut q: Vec<String> = extra.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
    let o = opts.query();
    if !o.is_empty() {
        q.push(o);
    }
    if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(key: &str, n: usize, f: impl Fn(usize) -> f64) -> Vec<MetricPoint> {
        (0..n)
            .map(|i| MetricPoint { key: key.into(), value: f(i), step: i as i64, timestamp_ms: Some(i as i64 * 10) })
            .collect()
    }

    #[test]
    fn downsampling_keeps_the_extremes_and_about_a_thousand_points() {
        let pts: Vec<(f64, f64)> =
            (0..50_000).map(|i| (i as f64, if i == 31_337 { 1e6 } else { (i % 13) as f64 })).collect();
        let kept = downsample(&pts);
        assert!(kept.len() <= MAX_POINTS + 2, "{}", kept.len());
        assert!(kept.iter().any(|p| p.1 == 1e6), "the spike survives");
        assert!(kept.iter().any(|p| p.1 == 0.0) && kept.iter().any(|p| p.1 == 12.0));
        assert!(kept.windows(2).all(|w| w[0].0 <= w[1].0), "x stays in order");
        assert_eq!(downsample(&pts[..10]), pts[..10].to_vec());
    }

    #[test]
    fn ticks_are_nice_and_labels_keep_every_leading_digit() {
        assert_eq!(nice_ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = nice_ticks(28_020.0, 28_040.0, 5);
        assert!(t.iter().all(|v| (28_020.0..=28_040.0).contains(v)), "{t:?}");
        assert_eq!(tick_label(28_030.0, 5.0), "28,030");
        assert_eq!(tick_label(-1_234_567.0, 1000.0), "-1,234,567");
        assert_eq!(tick_label(0.25, 0.05), "0.25");
        assert_eq!(tick_label(0.3, 0.1), "0.3");
        assert_eq!(tick_label(3.0e-6, 1e-6), "3.00e-6");
        assert_eq!(tick_label(2.5e10, 1e10), "2.50e10");
        assert!(nice_ticks(-1.0, 1.0, 4).contains(&0.0));
    }

    #[test]
    fn a_chart_of_big_numbers_has_room_for_its_labels() {
        let pts = points("rmse", 200, |i| 28_000.0 + 3000.0 / (i + 1) as f64);
        let html = metric_section(&[Series { label: "a".into(), href: None, points: &pts }], &ChartOpts::default())
            .into_string();
        assert!(html.contains(">31,000<") || html.contains(">30,000<"), "{html}");
        // The left edge sits right of the longest label: 6 characters (`31,000`) need ~48 px.
        let left: f64 = html
            .split("<rect x=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse().ok())
            .expect("rect");
        assert!(left >= 10.0 + 6.0 * CHAR_W, "{left}");
    }

    #[test]
    fn one_point_per_run_is_a_table_and_many_runs_overlay() {
        let one = points("auc", 1, |_| 28_029.790889);
        let a = points("loss", 50, |i| 1.0 / (i + 1) as f64);
        let b = points("loss", 60, |i| 2.0 / (i + 1) as f64);
        let series = [
            Series { label: "<b>a</b>".into(), href: Some("/ui/runs/a".into()), points: &[one.clone(), a].concat() },
            Series { label: "b".into(), href: None, points: &b },
        ];
        let html = metric_section(&series, &ChartOpts::default()).into_string();
        assert!(html.contains("<table id=\"single-metrics\">"), "{html}");
        assert!(html.contains("28029.790889"), "{html}");
        assert!(!html.contains("data-metric=\"auc\""), "a one-point metric is not charted");
        assert_eq!(html.matches("data-metric=\"loss\"").count(), 1, "one chart for both runs");
        assert_eq!(html.matches("<path d=\"M").count(), 2, "one line per run");
        assert!(html.contains("&lt;b&gt;a&lt;/b&gt;") && !html.contains("<b>a</b>"), "labels are escaped");
    }

    #[test]
    fn options_parse_and_say_what_is_wrong() {
        let q = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let o = ChartOpts::from_query(&q(&[("smooth", "0.6"), ("x", "time"), ("logy", "1")])).expect("ok");
        assert_eq!(o, ChartOpts { smooth: 0.6, x: XAxis::Time, logy: true });
        assert_eq!(o.query(), "smooth=0.6&x=time&logy=1");
        assert!(ChartOpts::from_query(&q(&[("smooth", "2")]))
            .expect_err("smooth 2 is out of range")
            .contains("from 0 to 0.99"));
        assert!(ChartOpts::from_query(&q(&[("x", "wall")]))
            .expect_err("x=wall is unknown")
            .contains("neither step nor time"));
        assert!(ChartOpts::from_query(&q(&[("logy", "maybe")])).is_err());
    }

    #[test]
    fn smoothing_log_scale_and_bad_values_are_drawn_honestly() {
        let pts = points("loss", 100, |i| {
            if i == 5 {
                f64::NAN
            } else if i == 6 {
                -1.0
            } else {
                1.0 / (i + 1) as f64
            }
        });
        let s = [Series { label: "a".into(), href: None, points: &pts }];
        let html = metric_section(&s, &ChartOpts { smooth: 0.8, x: XAxis::Time, logy: true }).into_string();
        assert!(html.contains("1 non-finite value not drawn"), "{html}");
        assert!(html.contains("1 ≤ 0 not drawn on a log scale"), "{html}");
        assert!(html.contains("stroke-opacity=\"0.3\""), "the raw line stays behind the smoothed one");
        assert!(html.contains("seconds since the first point"), "{html}");
    }

    #[test]
    fn fifty_thousand_steps_stay_small() {
        let pts = points("loss", 50_000, |i| 1000.0 / (i + 1) as f64 + (i % 7) as f64 * 0.01);
        let html = metric_section(&[Series { label: "a".into(), href: None, points: &pts }], &ChartOpts::default())
            .into_string();
        assert!(html.len() < 40_000, "{} bytes", html.len());
    }
}
