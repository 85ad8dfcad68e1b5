//! Text from a file someone else wrote (a ceremony request's purpose, credential, reason,
//! requester), made safe to show on a terminal.
//!
//! Every character that a terminal would act on rather than show is written as a visible
//! escape: C0 controls, DEL and C1 controls as `\xHH` (so ESC is `\x1b`, CSI is `\x9b`), and the
//! characters that reorder or hide text (bidirectional embeddings, overrides and isolates,
//! zero-width characters, the byte-order mark) as `\u{HHHH}`. A backslash is doubled, so a
//! literal `\x1b` typed into a reason cannot pass for an escaped one. Newlines and tabs are
//! escaped too: a reason must not be able to draw a fake "Requester:" line.

/// Whether `c` reorders or hides text without being a control character.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// `text` with every control or invisible formatting character written as a visible escape.
pub fn render_untrusted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if c.is_control() {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else if is_invisible_format(c) {
            out.push_str(&format!("\\u{{{:04x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_obeyed() {
        // Clear the screen, move the cursor, recolour, set the window title, ring the bell.
        let attack = "drill\x1b[2J\x1b[H\x1b[32mApproved by security\x1b[0m\x1b]0;ok\x07\r\x08";
        let shown = render_untrusted(attack);
        assert_eq!(
            shown,
            "drill\\x1b[2J\\x1b[H\\x1b[32mApproved by security\\x1b[0m\\x1b]0;ok\\x07\\x0d\\x08"
        );
        assert!(!shown.chars().any(char::is_control));
        // The 8-bit CSI and DEL.
        assert_eq!(render_untrusted("a\u{9b}2Jb\x7f"), "a\\x9b2Jb\\x7f");
    }

    #[test]
    fn line_breaks_bidi_overrides_and_invisible_characters_are_shown() {
        assert_eq!(
            render_untrusted("IdP down\nRequester: alice"),
            "IdP down\\x0aRequester: alice"
        );
        assert_eq!(render_untrusted("prod\u{202e}dorp"), "prod\\u{202e}dorp");
        assert_eq!(
            render_untrusted("a\u{200b}b\u{2066}c\u{feff}"),
            "a\\u{200b}b\\u{2066}c\\u{feff}"
        );
        assert_eq!(render_untrusted("line\u{2028}sep"), "line\\u{2028}sep");
    }

    #[test]
    fn a_typed_escape_cannot_pass_for_a_real_one_and_plain_text_is_unchanged() {
        assert_eq!(render_untrusted("\\x1b"), "\\\\x1b");
        assert_ne!(render_untrusted("\\x1b"), render_untrusted("\x1b"));
        let plain = "Rotate prod-breakglass: IdP outage #4521 (Zoë, 2026-11-30) ✓";
        assert_eq!(render_untrusted(plain), plain);
    }
}
