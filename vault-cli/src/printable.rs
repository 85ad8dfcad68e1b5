//! Printable documents (the runbook and the audit report): a handful of block kinds rendered to
//! Markdown or to one standalone HTML page with print CSS.
//!
//! Every piece of text goes through one escaping path, whatever its origin: first
//! [`render_untrusted`] writes control characters, line breaks and invisible or reordering
//! characters as visible escapes (the vault directory is untrusted storage, and a name or a
//! reason read from it must not draw a line of its own), then the format's own escaping makes
//! the rest literal (HTML entities; Markdown backslash escapes, code spans and fences longer
//! than any backtick run inside them).

use vault_core::trust::untrusted_text::render_untrusted;

/// A run of text in one style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// Ordinary text.
    Plain(String),
    /// Bold.
    Strong(String),
    /// A command or identifier, in a monospaced font.
    Code(String),
}

/// A line of text: spans in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(pub Vec<Span>);

impl Text {
    /// Adds plain text.
    pub fn plain(mut self, text: impl Into<String>) -> Text {
        self.0.push(Span::Plain(text.into()));
        self
    }
    /// Adds bold text.
    pub fn strong(mut self, text: impl Into<String>) -> Text {
        self.0.push(Span::Strong(text.into()));
        self
    }
    /// Adds monospaced text.
    pub fn code(mut self, text: impl Into<String>) -> Text {
        self.0.push(Span::Code(text.into()));
        self
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Text {
        Text::default().plain(text)
    }
}

impl From<String> for Text {
    fn from(text: String) -> Text {
        Text::default().plain(text)
    }
}

/// One block of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A section heading (level 2 or 3; the title is the document's).
    Heading(u8, Text),
    /// A paragraph.
    Para(Text),
    /// A bulleted list.
    List(Vec<Text>),
    /// A numbered list of steps.
    Steps(Vec<Text>),
    /// Name-value pairs.
    Facts(Vec<(String, Text)>),
    /// A table: header cells and rows.
    Table(Vec<String>, Vec<Vec<Text>>),
    /// Commands to type, one per line.
    Commands(Vec<String>),
}

/// A document: a title and blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The title.
    pub title: String,
    /// The blocks, in order.
    pub blocks: Vec<Block>,
}

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Markdown (CommonMark with pipe tables).
    Markdown,
    /// A standalone HTML page with print CSS.
    Html,
}

impl Document {
    /// The document in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Markdown => self.markdown(),
            Format::Html => self.html(),
        }
    }

    /// The blocks alone, as Markdown (what a digest of the content is taken over).
    pub fn blocks_markdown(&self) -> String {
        let mut out = String::new();
        for block in &self.blocks {
            md_block(&mut out, block);
        }
        out
    }

    fn markdown(&self) -> String {
        format!("# {}\n\n{}", md_text(&self.title), self.blocks_markdown())
    }

    fn html(&self) -> String {
        let mut body = String::new();
        for block in &self.blocks {
            html_block(&mut body, block);
        }
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
             <style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n{body}</body></html>\n",
            title = html_text(&self.title),
        )
    }
}

/// Print CSS: margins from the print dialog's paper (A4 or Letter), nothing wider than the
/// page (long identifiers and commands wrap), headings kept with what follows them, table rows
/// and command blocks never split across pages.
const STYLE: &str = "\
@page{margin:15mm}\
*{box-sizing:border-box}\
html,body{margin:0;background:#fff;color:#000}\
body{font-family:'DejaVu Sans',Arial,sans-serif;font-size:10pt;line-height:1.4;overflow-wrap:break-word}\
@media screen{body{max-width:190mm;margin:0 auto;padding:8mm}}\
h1{font-size:16pt;margin:0 0 3mm}\
h2{font-size:13pt;margin:6mm 0 2mm;border-bottom:.3mm solid #000;break-after:avoid;page-break-after:avoid}\
h3{font-size:11pt;margin:4mm 0 1mm;break-after:avoid;page-break-after:avoid}\
p{margin:1.5mm 0}\
table{border-collapse:collapse;width:100%;margin:2mm 0;font-size:8.5pt}\
th,td{border:.2mm solid #666;padding:1mm 1.5mm;text-align:left;vertical-align:top}\
th{background:#eee}\
tr{break-inside:avoid;page-break-inside:avoid}\
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.5mm 4mm;margin:2mm 0}\
dl.facts dt{font-weight:bold}\
dl.facts dd{margin:0}\
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f4f4f4;border:.2mm solid #999;\
padding:2mm;margin:2mm 0;break-inside:avoid;page-break-inside:avoid}\
code,pre{font-family:'DejaVu Sans Mono',monospace;font-size:8.5pt;overflow-wrap:anywhere}\
td code{font-size:7.5pt}\
ol,ul{margin:1.5mm 0;padding-left:7mm}\
li{margin:.8mm 0}";

/// Text made visible: every control, line break or invisible character as an escape.
fn visible(text: &str) -> String {
    render_untrusted(text)
}

/// Text escaped for HTML content and attribute values.
pub fn html_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in visible(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Text escaped for Markdown: every character Markdown (with pipe tables) could read as
/// inline structure is backslash-escaped, and so is a leading `-` or `1.` that would start a
/// list.
fn md_text(text: &str) -> String {
    let text = visible(text);
    let mut out = String::with_capacity(text.len());
    let mut leading_digits = true;
    for (i, c) in text.chars().enumerate() {
        let structural = matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '&' | '#' | '~' | '!' | '+'
        );
        let starts_list = (c == '-' && i == 0) || (c == '.' && leading_digits && i > 0);
        if structural || starts_list {
            out.push('\\');
        }
        out.push(c);
        leading_digits = leading_digits && c.is_ascii_digit();
    }
    out
}

/// The longest run of backticks in `text`.
fn longest_backticks(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// A Markdown code span holding `text` literally.
fn md_code(text: &str) -> String {
    let text = visible(text);
    let fence = "`".repeat(longest_backticks(&text) + 1);
    format!("{fence} {text} {fence}")
}

fn md_spans(text: &Text) -> String {
    text.0
        .iter()
        .map(|span| match span {
            Span::Plain(t) => md_text(t),
            Span::Strong(t) if t.is_empty() => String::new(),
            Span::Strong(t) => format!("**{}**", md_text(t)),
            Span::Code(t) => md_code(t),
        })
        .collect()
}

fn md_block(out: &mut String, block: &Block) {
    match block {
        Block::Heading(level, text) => {
            let marks = "#".repeat(usize::from((*level).clamp(2, 6)));
            out.push_str(&format!("{marks} {}\n\n", md_spans(text)));
        }
        Block::Para(text) => out.push_str(&format!("{}\n\n", md_spans(text))),
        Block::List(items) => {
            for item in items {
                out.push_str(&format!("- {}\n", md_spans(item)));
            }
            out.push('\n');
        }
        Block::Steps(items) => {
            for (i, item) in items.iter().enumerate() {
                out.push_str(&format!("{}. {}\n", i + 1, md_spans(item)));
            }
            out.push('\n');
        }
        Block::Facts(facts) => {
            for (name, value) in facts {
                out.push_str(&format!("- **{}**: {}\n", md_text(name), md_spans(value)));
            }
            out.push('\n');
        }
        Block::Table(head, rows) => {
            let cells: Vec<String> = head.iter().map(|h| md_text(h)).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
            out.push_str(&format!("|{}\n", "---|".repeat(head.len())));
            for row in rows {
                let cells: Vec<String> = row.iter().map(md_spans).collect();
                out.push_str(&format!("| {} |\n", cells.join(" | ")));
            }
            out.push('\n');
        }
        Block::Commands(lines) => {
            let lines: Vec<String> = lines.iter().map(|l| visible(l)).collect();
            let longest = lines
                .iter()
                .map(|l| longest_backticks(l))
                .max()
                .unwrap_or(0);
            let fence = "`".repeat(longest.max(2) + 1);
            out.push_str(&format!("{fence}sh\n{}\n{fence}\n\n", lines.join("\n")));
        }
    }
}

fn html_spans(text: &Text) -> String {
    text.0
        .iter()
        .map(|span| match span {
            Span::Plain(t) => html_text(t),
            Span::Strong(t) => format!("<b>{}</b>", html_text(t)),
            Span::Code(t) => format!("<code>{}</code>", html_text(t)),
        })
        .collect()
}

fn html_block(out: &mut String, block: &Block) {
    match block {
        Block::Heading(level, text) => {
            let level = (*level).clamp(2, 6);
            out.push_str(&format!("<h{level}>{}</h{level}>\n", html_spans(text)));
        }
        Block::Para(text) => out.push_str(&format!("<p>{}</p>\n", html_spans(text))),
        Block::List(items) | Block::Steps(items) => {
            let tag = if matches!(block, Block::List(_)) {
                "ul"
            } else {
                "ol"
            };
            out.push_str(&format!("<{tag}>"));
            for item in items {
                out.push_str(&format!("<li>{}</li>", html_spans(item)));
            }
            out.push_str(&format!("</{tag}>\n"));
        }
        Block::Facts(facts) => {
            out.push_str("<dl class=\"facts\">");
            for (name, value) in facts {
                out.push_str(&format!(
                    "<dt>{}</dt><dd>{}</dd>",
                    html_text(name),
                    html_spans(value)
                ));
            }
            out.push_str("</dl>\n");
        }
        Block::Table(head, rows) => {
            out.push_str("<table><thead><tr>");
            for h in head {
                out.push_str(&format!("<th>{}</th>", html_text(h)));
            }
            out.push_str("</tr></thead><tbody>");
            for row in rows {
                out.push_str("<tr>");
                for cell in row {
                    out.push_str(&format!("<td>{}</td>", html_spans(cell)));
                }
                out.push_str("</tr>");
            }
            out.push_str("</tbody></table>\n");
        }
        Block::Commands(lines) => {
            let lines: Vec<String> = lines.iter().map(|l| html_text(l)).collect();
            out.push_str(&format!("<pre>{}</pre>\n", lines.join("\n")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(blocks: Vec<Block>) -> Document {
        Document {
            title: "t".into(),
            blocks,
        }
    }

    const HOSTILE: &str = "ops</td><script>alert(1)</script>\n# Approved\x1b[2J\u{202e}`x`|*y*";

    #[test]
    fn vault_text_cannot_become_markup_in_html() {
        let html = doc(vec![
            Block::Para(Text::default().plain(HOSTILE).strong(HOSTILE).code(HOSTILE)),
            Block::Table(vec!["a".into()], vec![vec![HOSTILE.into()]]),
            Block::Commands(vec![HOSTILE.into()]),
            Block::Facts(vec![(HOSTILE.into(), HOSTILE.into())]),
        ])
        .render(Format::Html);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("</td><script"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("\\x0a# Approved\\x1b[2J\\u{202e}"), "{html}");
        assert!(!html.chars().any(|c| c.is_control() && c != '\n'));
        assert!(!html.contains('\u{202e}'));
    }

    #[test]
    fn vault_text_cannot_become_structure_in_markdown() {
        let md = doc(vec![
            Block::Para(Text::default().plain(HOSTILE).code(HOSTILE)),
            Block::Table(vec!["a".into()], vec![vec![HOSTILE.into()]]),
            Block::Commands(vec!["echo ```".into(), HOSTILE.into()]),
        ])
        .render(Format::Markdown);
        // No line of the output starts with a heading mark that came from the vault.
        assert!(!md.lines().any(|l| l.starts_with("# Approved")), "{md}");
        // Table cells keep their pipes escaped; the code fence outlasts the backticks inside.
        assert!(md.contains("\\|\\*y\\*"), "{md}");
        assert!(md.contains("````sh\necho ```\n"), "{md}");
        assert!(md.contains("\\<script\\>"), "{md}");
        assert!(!md.chars().any(|c| c.is_control() && c != '\n'));
        // A code span with backticks inside is fenced by a longer run.
        assert!(md.contains("`` ops<"), "{md}");
    }

    #[test]
    fn plain_words_read_as_they_are() {
        let md = doc(vec![Block::Para(
            "Run it on 2026-11-30, then check: done.".into(),
        )])
        .render(Format::Markdown);
        assert!(
            md.contains("Run it on 2026-11-30, then check: done."),
            "{md}"
        );
    }
}
