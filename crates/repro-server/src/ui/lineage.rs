//! The lineage picture: one inline SVG drawn from the run's record — what went in (data
//! snapshots, the commit and its diff, the environment, params and seed), the run, what
//! came out (outputs), the model versions made from it and their stages, and its replays —
//! each box with its digest and, on a served page, a link. Drawn on the server from numbers
//! and escaped text only, so it needs no script and prints as it shows.

use maud::{html, Markup};
use repro_core::registry::ModelVersion;
use repro_core::Digest;
use repro_store::meta::{ReplayRow, StoredRun};

use super::enc;
use super::layout::status_class;

/// One box.
struct Node {
    label: String,
    sub: String,
    /// Everything the box stands for, shown on hover (and read by screen readers).
    title: String,
    href: Option<String>,
    /// ok / warn / bad / muted: the box's border colour.
    class: &'static str,
}

const COL_X: [f64; 4] = [8.0, 262.0, 516.0, 770.0];
const NODE_W: f64 = 222.0;
const NODE_H: f64 = 44.0;
const GAP: f64 = 12.0;
const TOP: f64 = 26.0;
/// Boxes per column before the rest are summed up in one "… N more" box.
const MAX_PER_COLUMN: usize = 8;

fn short(d: &Digest) -> String {
    d.as_str().get(..12).unwrap_or(d.as_str()).to_string()
}

/// `s` cut to `n` characters with an ellipsis: the whole text stays in the box's title.
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn node(label: impl Into<String>, sub: impl Into<String>, href: Option<String>, class: &'static str) -> Node {
    let (label, sub) = (label.into(), sub.into());
    Node { title: format!("{label} — {sub}"), label, sub, href, class }
}

/// Caps a column, the boxes past the cap summed up in one.
fn capped(mut nodes: Vec<Node>, what: &str) -> Vec<Node> {
    if nodes.len() > MAX_PER_COLUMN {
        let rest = nodes.len() - (MAX_PER_COLUMN - 1);
        nodes.truncate(MAX_PER_COLUMN - 1);
        nodes.push(node(format!("… {rest} more {what}"), "listed on the run page", None, "muted"));
    }
    nodes
}

/// The picture of `run`. `links`: boxes link to the run page's sections and the model
/// pages (a served page); the standalone report passes false, as it has no server to
/// link to. `captured`: false for a run a tracking client created, whose inputs repro
/// never saw (drawn as "not captured", not as facts).
pub(crate) fn lineage_svg(
    run: &StoredRun,
    versions: &[ModelVersion],
    replays: &[ReplayRow],
    captured: bool,
    links: bool,
) -> Markup {
    let r = &run.record;
    let id = r.id.as_str();
    let here = |anchor: &str| links.then(|| format!("/ui/runs/{}#{anchor}", enc(id)));

    let mut inputs = Vec::new();
    if captured {
        for i in &r.inputs {
            let how = if i.reference { "reference" } else { "stored" };
            inputs.push(node(
                format!("data {}", i.path),
                format!("{} · {} files · {how}", short(&i.snapshot), i.files),
                here("data"),
                "ok",
            ));
        }
        let c = &r.code;
        let (sub, class) = match (&c.commit, c.dirty, &c.diff) {
            (None, _, _) => ("no commit".to_string(), "bad"),
            (Some(commit), false, _) => (format!("{} · clean", commit.get(..12).unwrap_or(commit)), "ok"),
            (Some(commit), true, Some(d)) => {
                (format!("{} + diff {}", commit.get(..10).unwrap_or(commit), d.as_str().get(..8).unwrap_or("")), "warn")
            }
            (Some(commit), true, None) => (format!("{} · dirty, no diff", commit.get(..10).unwrap_or(commit)), "bad"),
        };
        inputs.push(node(format!("commit {}", c.branch.as_deref().unwrap_or("")), sub, here("code"), class));
        let env = &r.environment;
        let (sub, class) = match (&env.python, &env.declared) {
            (Some(p), Some(d)) => (
                format!("Python {} · {} pkgs · {}", p.version.as_deref().unwrap_or("?"), p.packages.len(), d.path),
                "ok",
            ),
            (Some(p), None) => (
                format!(
                    "Python {} · {} pkgs · no declared file",
                    p.version.as_deref().unwrap_or("?"),
                    p.packages.len()
                ),
                "warn",
            ),
            (None, _) => ("no interpreter captured".to_string(), "warn"),
        };
        inputs.push(node("environment", sub, here("environment"), class));
        let n = r.params.values.len() + r.params.logged.len();
        let seed = if r.seed.generated { "generated" } else { "given" };
        inputs.push(node(
            format!("params · seed {}", r.seed.value),
            format!("{n} params · {} files · seed {seed}", r.params.files.len()),
            here("params"),
            "ok",
        ));
    } else {
        for what in ["data", "commit", "environment", "seed"] {
            inputs.push(node(what, "not captured (created through the API)", None, "muted"));
        }
    }
    let inputs = capped(inputs, "inputs");

    let outputs = capped(
        r.outputs
            .iter()
            .map(|o| {
                let (sub, class) = match (&o.snapshot, o.missing) {
                    (_, true) => ("missing after the run".to_string(), "bad"),
                    (Some(d), false) => (format!("{} · {} files", short(d), o.files), "ok"),
                    (None, false) => ("not stored".to_string(), "warn"),
                };
                node(format!("output {}", o.path), sub, here("outputs"), class)
            })
            .collect(),
        "outputs",
    );

    let models = capped(
        versions
            .iter()
            .map(|v| {
                let mut sub = v.stage.clone().unwrap_or_else(|| "no stage".into());
                if !v.aliases.is_empty() {
                    sub.push_str(&format!(" · @{}", v.aliases.join(" @")));
                }
                let href = links.then(|| format!("/ui/models/{}", enc(&v.reference())));
                node(v.reference(), sub, href, if v.stage.is_some() { "ok" } else { "muted" })
            })
            .collect(),
        "versions",
    );

    let replay_nodes: Vec<Node> = replays
        .iter()
        .take(MAX_PER_COLUMN)
        .map(|rp| {
            let v = rp.verdict.as_str();
            let href = links.then(|| format!("/ui/runs/{}", enc(rp.replay.as_str())));
            node(format!("replay {}", rp.replay.short()), v.to_string(), href, status_class(v))
        })
        .collect();

    let name = run.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| r.id.short().to_string());
    let run_class = status_class(r.status.as_str());
    let run_node = Node {
        title: format!("run {} ({}) — {}", name, id, r.status.as_str()),
        label: format!("run {name}"),
        sub: format!("{} · {}", r.id.short(), r.status.as_str()),
        href: None,
        class: run_class,
    };

    // Rows: inputs in column 0, the run and its replays in 1, outputs in 2, versions in 3.
    let rows = inputs.len().max(outputs.len()).max(models.len()).max(1 + replay_nodes.len()).max(1);
    let height = TOP + rows as f64 * (NODE_H + GAP) + 4.0;
    let y = |i: usize| TOP + i as f64 * (NODE_H + GAP);
    let run_y = y(0);
    let mid = |yy: f64| yy + NODE_H / 2.0;

    let mut edges: Vec<(f64, f64, f64, f64)> = Vec::new();
    for (i, _) in inputs.iter().enumerate() {
        edges.push((COL_X[0] + NODE_W, mid(y(i)), COL_X[1], mid(run_y)));
    }
    for (i, _) in outputs.iter().enumerate() {
        edges.push((COL_X[1] + NODE_W, mid(run_y), COL_X[2], mid(y(i))));
    }
    for (i, v) in versions.iter().take(models.len()).enumerate() {
        // A version comes from the output its artifact belongs to, when that is drawn.
        let from = v
            .artifact
            .as_ref()
            .and_then(|a| r.outputs.iter().take(outputs.len()).position(|o| o.path == a.output))
            .map(|j| (COL_X[2] + NODE_W, mid(y(j))))
            .unwrap_or((COL_X[1] + NODE_W, mid(run_y)));
        edges.push((from.0, from.1, COL_X[3], mid(y(i))));
    }

    let boxes = |col: usize, nodes: &[Node], first_row: usize| -> Markup {
        html! {
            @for (i, n) in nodes.iter().enumerate() {
                (draw(n, COL_X[col], y(first_row + i)))
            }
        }
    };

    html! {
        svg.lineage #lineage xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 1000 " (height) } width="1000"
            role="img" aria-label="Lineage of the run" style="max-width:100%;height:auto" {
            title { "Lineage of run " (name) }
            defs {
                marker #arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto" {
                    path d="M0,0 L10,5 L0,10 z" fill="#8a93a6" {}
                }
            }
            @for (x, label) in [(COL_X[0], "inputs"), (COL_X[1], "run"), (COL_X[2], "outputs"), (COL_X[3], "model versions")] {
                text x=(x) y="14" font-size="11" fill="#687083" { (label) }
            }
            @for (x1, y1, x2, y2) in &edges {
                path d=(format!("M{x1:.0},{y1:.0} C{:.0},{y1:.0} {:.0},{y2:.0} {x2:.0},{y2:.0}", x1 + 24.0, x2 - 24.0))
                    fill="none" stroke="#8a93a6" stroke-width="1.4" marker-end="url(#arrow)" {}
            }
            @for (i, _) in replay_nodes.iter().enumerate() {
                @let (x, y1, y2) = (COL_X[1] + NODE_W / 2.0, if i == 0 { run_y + NODE_H } else { y(i) + NODE_H }, y(i + 1));
                path d=(format!("M{x:.0},{y1:.0} L{x:.0},{y2:.0}")) stroke="#8a93a6" stroke-width="1.4"
                    stroke-dasharray="4 3" marker-end="url(#arrow)" {}
            }
            (boxes(0, &inputs, 0))
            (draw(&run_node, COL_X[1], run_y))
            (boxes(1, &replay_nodes, 1))
            (boxes(2, &outputs, 0))
            (boxes(3, &models, 0))
        }
    }
}

fn draw(n: &Node, x: f64, y: f64) -> Markup {
    let stroke = match n.class {
        "ok" => "#116b2e",
        "warn" => "#d29a00",
        "bad" => "#b00020",
        _ => "#b8bfcc",
    };
    let inner = html! {
        title { (n.title) }
        rect x=(x) y=(y) width=(NODE_W) height=(NODE_H) rx="6" fill="#fff" stroke=(stroke) stroke-width="1.6" {}
        text x=(x + 8.0) y=(y + 18.0) font-size="12.5" font-weight="600" fill="#1d2330" { (cut(&n.label, 30)) }
        text x=(x + 8.0) y=(y + 35.0) font-size="10.5" fill="#51596b" font-family="ui-monospace,monospace" { (cut(&n.sub, 36)) }
    };
    html! {
        g.node data-class=(n.class) {
            @if let Some(href) = &n.href {
                a href=(href) { (inner) }
            } @else {
                (inner)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn long_labels_are_cut_with_an_ellipsis() {
        assert_eq!(cut("short", 30), "short");
        assert_eq!(cut("abcdefghij", 5), "abcd…");
        assert_eq!(cut("ééééééé", 3), "éé…");
    }
}
