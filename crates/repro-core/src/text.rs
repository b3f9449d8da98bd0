//! Text for a terminal: characters that would steer it (escape sequences, C1 controls,
//! bidirectional overrides) shown as escapes instead of being obeyed.
//!
//! Run names, tags, params, paths and metric keys arrive from people and from HTTP clients;
//! printed raw, `\u{1b}]0;…\u{7}` retitles the window and U+202E reverses what follows.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal as it is: C0 controls but newline and tab, DEL,
/// C1 controls, bidirectional embeddings, overrides, isolates and marks, and the Unicode
/// line and paragraph separators.
pub fn is_unsafe(c: char) -> bool {
    match c {
        '\n' | '\t' => false,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' => true,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

/// `s` with every unsafe character escaped (`\u{1b}`, `\r`); newlines and tabs kept.
pub fn escape_unsafe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` on one line: newlines and tabs escaped too (error messages, table cells).
pub fn escape_one_line(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\n' || c == '\t' || is_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| if c == '\n' || c == '\t' || is_unsafe(c) { c.escape_debug().to_string() } else { c.to_string() })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn terminal_controls_are_escaped() {
        assert_eq!(escape_unsafe("\u{1b}]0;pwned\u{7}"), "\\u{1b}]0;pwned\\u{7}");
        assert_eq!(escape_unsafe("a\u{202e}b\u{9b}c\rd\u{7f}"), "a\\u{202e}b\\u{9b}c\\rd\\u{7f}");
        assert_eq!(escape_unsafe("two\nlines\tok é 中"), "two\nlines\tok é 中");
        assert!(matches!(escape_unsafe("plain"), Cow::Borrowed(_)));
        assert_eq!(escape_one_line("a\nb"), "a\\nb");
    }

    proptest! {
        #[test]
        fn nothing_unsafe_survives(s in any::<String>()) {
            let e = escape_unsafe(&s);
            prop_assert!(!e.chars().any(is_unsafe));
            prop_assert_eq!(e.matches('\n').count(), s.matches('\n').count());
            prop_assert!(!escape_one_line(&s).chars().any(|c| c == '\n' || is_unsafe(c)));
            if !s.chars().any(is_unsafe) {
                prop_assert_eq!(e.as_ref(), s.as_str());
            }
        }
    }
}
