//! Progress bars on a terminal, silence elsewhere.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use repro_exec::{Progress, Reporter};

pub struct Ui {
    bar: Mutex<Option<ProgressBar>>,
    tty: bool,
    quiet: bool,
}

impl Ui {
    pub fn new(quiet: bool) -> Ui {
        Ui { bar: Mutex::new(None), tty: std::io::stderr().is_terminal(), quiet }
    }
}

impl Progress for Ui {
    fn start(&self, what: &str, total: u64) {
        if !self.tty || total == 0 {
            return;
        }
        let bar = ProgressBar::new(total);
        let unit = if what.contains("object") { "{pos}/{len}" } else { "{bytes}/{total_bytes} ({bytes_per_sec})" };
        let style = ProgressStyle::with_template(&format!("{{spinner}} {what} [{{bar:30}}] {unit} {{eta}}"))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        if let Ok(mut b) = self.bar.lock() {
            *b = Some(bar);
        }
    }
    fn advance(&self, n: u64) {
        if let Ok(b) = self.bar.lock() {
            if let Some(b) = b.as_ref() {
                b.inc(n);
            }
        }
    }
    fn finish(&self) {
        if let Ok(mut b) = self.bar.lock() {
            if let Some(b) = b.take() {
                b.finish_and_clear();
            }
        }
    }
}

impl Reporter for Ui {
    fn message(&self, text: &str) {
        if !self.quiet {
            crate::render::message(text);
        }
    }
    fn warn(&self, text: &str) {
        crate::render::message(&format!("warning: {text}"));
    }
    fn progress(&self) -> &dyn Progress {
        self
    }
}
