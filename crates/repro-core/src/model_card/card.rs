//! The Markdown model card, and the user's own `model_card.md` it takes sections from.
//!
//! A `model_card.md` is plain Markdown: text before the first `##` heading is the
//! overview; sections whose heading names a consideration CycloneDX knows (intended users,
//! use cases, limitations, trade-offs, ethical considerations) become the BOM's
//! `considerations`, one item per bullet or paragraph; any other section is carried into
//! the card as written.

use serde::{Deserialize, Serialize};

use super::{cyclonedx, metric_text, Considerations, ModelFacts};

/// What the user wrote in `model_card.md`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCard {
    pub overview: Option<String>,
    pub considerations: Considerations,
    /// Sections of no known kind: (heading, body), in order.
    pub sections: Vec<(String, String)>,
}

fn kind_of(heading: &str) -> Option<usize> {
    let h = heading.trim().to_lowercase().replace(['-', '_'], " ");
    let h = h.trim_end_matches(':');
    match h {
        "users" | "intended users" | "audience" => Some(0),
        "use cases" | "intended use" | "intended uses" | "uses" => Some(1),
        "limitations" | "technical limitations" | "known limitations" | "out of scope uses" => Some(2),
        "trade offs" | "tradeoffs" | "performance trade offs" | "performance tradeoffs" => Some(3),
        "ethical considerations" | "ethics" | "risks" | "risks and ethical considerations" => Some(4),
        _ => None,
    }
}

/// One item per bullet (`-`, `*`, `+`, continued on indented lines) or per paragraph.
fn items(body: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    let flush = |current: &mut Option<String>, out: &mut Vec<String>| {
        if let Some(c) = current.take() {
            let c = c.trim().to_string();
            if !c.is_empty() {
                out.push(c);
            }
        }
    };
    for line in body.lines() {
        let t = line.trim();
        if t.is_empty() {
            flush(&mut current, &mut out);
        } else if let Some(rest) =
            t.strip_prefix("- ").or_else(|| t.strip_prefix("* ")).or_else(|| t.strip_prefix("+ "))
        {
            flush(&mut current, &mut out);
            current = Some(rest.trim().to_string());
        } else {
            let c = current.get_or_insert_with(String::new);
            if !c.is_empty() {
                c.push(' ');
            }
            c.push_str(t);
        }
    }
    flush(&mut current, &mut out);
    out
}

/// Reads the user's `model_card.md`. A `# Title` line is dropped: the card has its own.
pub fn parse_user_card(text: &str) -> UserCard {
    let mut card = UserCard::default();
    let mut heading: Option<String> = None;
    let mut body = String::new();
    let finish = |heading: Option<String>, body: &str, card: &mut UserCard| {
        let body = body.trim();
        match heading {
            None if !body.is_empty() => card.overview = Some(body.to_string()),
            None => {}
            Some(h) => match kind_of(&h) {
                Some(k) => {
                    let c = &mut card.considerations;
                    let list = [&mut c.users, &mut c.use_cases, &mut c.limitations, &mut c.tradeoffs, &mut c.ethical];
                    for (i, l) in list.into_iter().enumerate() {
                        if i == k {
                            l.extend(items(body));
                        }
                    }
                }
                None => card.sections.push((h, body.to_string())),
            },
        }
    };
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            finish(heading.take(), &body, &mut card);
            body.clear();
            heading = Some(h.trim().to_string());
        } else if line.starts_with("# ") && heading.is_none() && body.trim().is_empty() {
            // The title.
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    finish(heading, &body, &mut card);
    card
}

/// A table cell: one line, pipes escaped.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn list(out: &mut String, title: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    out.push_str(&format!("\n### {title}\n\n"));
    for i in items {
        out.push_str(&format!("- {i}\n"));
    }
}

/// The card, in Markdown. Every digest, dataset and metric in it is the BOM's.
pub fn render(f: &ModelFacts) -> String {
    let mut o = String::new();
    o.push_str(&format!("# Model card: {}\n\n", f.reference()));
    if let Some(d) = &f.description {
        o.push_str(&format!("{d}\n\n"));
    }
    if let Some(text) = &f.user.overview {
        o.push_str(&format!("{text}\n\n"));
    }
    o.push_str("## Model details\n\n| | |\n| --- | --- |\n");
    let t = &f.training;
    let rows: Vec<(&str, String)> = vec![
        ("Model", format!("`{}`", f.reference())),
        ("Registered", format!("{} by {}", f.registered_at, cell(&f.registered_by))),
        ("Training run", format!("`{}`", f.run)),
        ("Lineage", format!("`{}`", f.lineage)),
        ("CycloneDX BOM serial number", format!("`{}`", f.serial_number())),
    ];
    for (k, v) in rows {
        o.push_str(&format!("| {k} | {v} |\n"));
    }
    o.push_str("\n### Files\n\n| File | Bytes | SHA-256 | BLAKE3 |\n| --- | ---: | --- | --- |\n");
    for file in &f.files {
        o.push_str(&format!("| `{}` | {} | `{}` | `{}` |\n", cell(&file.path), file.size, file.sha256, file.blake3));
    }
    o.push_str("\n## Training data\n\n");
    if f.datasets.is_empty() {
        o.push_str("The run recorded no input data.\n");
    } else {
        o.push_str("| Data | Files | Bytes | Snapshot (BLAKE3) |\n| --- | ---: | ---: | --- |\n");
        for d in &f.datasets {
            let name = match &d.dataset {
                Some(n) => format!("`{}` ({})", cell(&d.path), cell(n)),
                None => format!("`{}`", cell(&d.path)),
            };
            o.push_str(&format!("| {name} | {} | {} | `{}` |\n", d.files, d.bytes, d.snapshot));
        }
    }
    o.push_str("\n## Metrics\n\n");
    if f.metrics.is_empty() {
        o.push_str("The run logged no metrics.\n");
    } else {
        o.push_str("| Metric | Value |\n| --- | ---: |\n");
        for (k, v) in &f.metrics {
            o.push_str(&format!("| {} | {} |\n", cell(k), metric_text(*v)));
        }
    }
    o.push_str("\n## Training\n\n");
    // The very string the BOM's workflow step says was executed.
    o.push_str(&format!("- Command: `` {} ``\n", cyclonedx::shell_words(&t.command)));
    if let Some(c) = &t.commit {
        o.push_str(&format!("- Code: git commit `{c}`{}\n", if t.dirty { " with uncommitted changes" } else { "" }));
    }
    o.push_str(&format!("- Seed: {}{}\n", t.seed, if t.seed_generated { " (generated by repro)" } else { "" }));
    if let Some(p) = &t.python {
        o.push_str(&format!("- Python {p}, {} packages installed\n", f.packages.len()));
    }
    o.push_str(&format!("- Platform: {} {}\n", t.os, t.arch));
    if let Some(e) = &t.registered_environment {
        o.push_str(&format!("- Environment: {e}\n"));
    }
    if !t.params.is_empty() {
        o.push_str("\n| Parameter | Value |\n| --- | --- |\n");
        for (k, v) in &t.params {
            o.push_str(&format!("| {} | `{}` |\n", cell(k), cell(v)));
        }
    }
    let c = &f.considerations;
    if !c.is_empty() {
        o.push_str("\n## Considerations\n");
        list(&mut o, "Intended users", &c.users);
        list(&mut o, "Use cases", &c.use_cases);
        list(&mut o, "Limitations", &c.limitations);
        list(&mut o, "Trade-offs", &c.tradeoffs);
        list(&mut o, "Ethical considerations", &c.ethical);
    }
    for (h, body) in &f.user.sections {
        o.push_str(&format!("\n## {h}\n\n{body}\n"));
    }
    o.push_str(&format!(
        "\n---\n\nRendered by repro from the same facts as the CycloneDX BOM (`repro model bom {}`), \
         which names this card by its SHA-256 ({}).\n",
        f.reference(),
        cyclonedx::CARD_NAME
    ));
    o
}
