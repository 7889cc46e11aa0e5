//! Text from outside (SSM, a node's compliance items, a host's files) is
//! data: before it reaches a terminal, every control character (C0, DEL,
//! C1) and every bidirectional formatting character is shown escaped, so
//! none can move the cursor, recolour the screen or reorder what is read.

use std::borrow::Cow;

/// Whether `c` would act on a terminal instead of being shown.
fn acts(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every acting character escaped: `\e` for ESC, `\n`, `\t`,
/// `\r`, and `\u{…}` for the rest; text without any is borrowed as it is.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(acts) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\u{1b}' => out.push_str("\\e"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if acts(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_bidi_overrides_are_shown_not_obeyed() {
        assert_eq!(safe("\u{1b}[31mred\u{1b}[0m"), "\\e[31mred\\e[0m");
        assert_eq!(safe("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(safe("two\nlines\r"), "two\\nlines\\r");
        assert_eq!(safe("del\u{7f} c1\u{9b}"), "del\\u{7f} c1\\u{9b}");
        assert_eq!(safe("\u{2066}iso\u{2069}"), "\\u{2066}iso\\u{2069}");
    }

    #[test]
    fn plain_text_and_other_scripts_pass_as_they_are() {
        for text in ["pkg.lock", "dépôt — 東京 ✓", ""] {
            assert!(matches!(safe(text), Cow::Borrowed(t) if t == text));
        }
    }
}
