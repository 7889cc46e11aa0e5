//! Text from outside (SSM, a node's compliance items, a host's files) is
//! data: before it reaches a terminal, every control character (C0, DEL,
//! C1) and every bidirectional formatting character is shown escaped, so
//! none can move the cursor, recolour the screen or reorder what is read.
//! The same escape keeps the journal's lines one line each (journalctl
//! shows a message with a control character as a blob, or raw with --all).

use std::borrow::Cow;

/// Whether `c` would act on a terminal instead of being shown.
fn acts(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every acting character escaped: `\e` for ESC, `\n`, `\t`,
/// `\r`, and `\u{…}` for the rest; text without any is borrowed as it is.
pub fn safe(text: &str) -> Cow<'_, str> {
    escaped(text, false)
}

/// As `safe`, but a message's own line breaks are kept: for a multi-line
/// message (an error with its advice) printed as a whole.
pub fn safe_lines(text: &str) -> Cow<'_, str> {
    escaped(text, true)
}

fn escaped(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let acting = |c: char| acts(c) && !(keep_newlines && c == '\n');
    if !text.chars().any(acting) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\u{1b}' => out.push_str("\\e"),
            '\n' if keep_newlines => out.push('\n'),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if acts(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A URL as it may be shown anywhere (a summary, a detail, the state
/// file, the journal, SSM): its password masked, `http://alice:***@proxy:3128`.
/// Here, in the lowest room, because proxies and repository sources both
/// carry `user:password@` and both are shown.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}{user}:***@{host}{path}")
        }
        None => url.to_string(),
    }
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
    fn a_message_keeps_its_own_lines() {
        assert_eq!(safe_lines("bad\nadvice\u{1b}[0m"), "bad\nadvice\\e[0m");
        assert!(matches!(safe_lines("one\ntwo"), Cow::Borrowed(_)));
    }

    #[test]
    fn plain_text_and_other_scripts_pass_as_they_are() {
        for text in ["pkg.lock", "dépôt — 東京 ✓", ""] {
            assert!(matches!(safe(text), Cow::Borrowed(t) if t == text));
        }
    }
}
