//! Printable HTML as a printer sees it: headless Chromium prints a page to PDF (on the paper a
//! print dialog would pick) or screenshots it to PNG, and poppler and zbar read the result
//! back: page count, words with their boxes, plain text, QR codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hsm_testing::tools::system_program;

use super::stderr;

/// The paper sizes every printable document is checked on.
pub const PAPERS: [&str; 2] = ["A4", "letter"];

/// Runs headless Chromium on `html` with `extra` arguments (a fresh profile, nothing from the
/// network), killing it after a minute.
pub fn chromium(work: &Path, html: &Path, extra: &[String]) {
    let program = system_program("chromium", "chromium");
    let profile = tempfile::tempdir_in(work).unwrap();
    let mut child = Command::new(program)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", html.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            assert!(status.success(), "chromium failed: {}", stderr(&output));
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish within a minute on {}",
                html.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Prints `page` on paper `size` (a CSS `@page` size, as a print dialog would pick it) to
/// `work/<stem>-<size>.pdf`.
pub fn print_to_pdf(work: &Path, page: &Path, size: &str) -> PathBuf {
    let stem = page.file_stem().unwrap().to_str().unwrap();
    let html = std::fs::read_to_string(page).unwrap();
    let on_paper = work.join(format!("{stem}-{size}.html"));
    std::fs::write(
        &on_paper,
        html.replace(
            "</head>",
            &format!("<style>@page{{size:{size}}}</style></head>"),
        ),
    )
    .unwrap();
    let pdf = work.join(format!("{stem}-{size}.pdf"));
    chromium(
        work,
        &on_paper,
        &[
            format!("--print-to-pdf={}", pdf.display()),
            "--no-pdf-header-footer".to_owned(),
        ],
    );
    assert!(pdf.exists(), "chromium wrote no PDF of {stem} for {size}");
    pdf
}

/// Screenshots `page` to `png` in a window of `size` (`900,1300`).
pub fn screenshot(work: &Path, page: &Path, png: &Path, size: &str) {
    chromium(
        work,
        page,
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size={size}"),
        ],
    );
    assert!(
        png.exists(),
        "chromium wrote no screenshot of {}",
        page.display()
    );
}

/// Runs a system tool and returns its standard output.
pub fn run(program: PathBuf, args: &[&str]) -> String {
    let output = Command::new(&program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{} {args:?}: {}",
        program.display(),
        stderr(&output)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The number of pages of a PDF.
pub fn pdf_pages(pdf: &Path) -> u32 {
    let info = run(
        system_program("pdfinfo", "poppler-utils"),
        &[pdf.to_str().unwrap()],
    );
    info.lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .expect("pdfinfo prints Pages:")
        .trim()
        .parse()
        .unwrap()
}

/// The text of every page of a PDF, in reading order.
pub fn pdf_text(pdf: &Path) -> String {
    run(
        system_program("pdftotext", "poppler-utils"),
        &["-layout", pdf.to_str().unwrap(), "-"],
    )
}

/// One word of a PDF page with its box, from `pdftotext -bbox`.
pub struct PdfWord {
    pub text: String,
    pub x_min: f64,
    pub y_min: f64,
    pub x_max: f64,
    pub y_max: f64,
}

fn attribute(tag: &str, name: &str) -> f64 {
    let start = tag.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    let end = start + tag[start..].find('"').unwrap();
    tag[start..end].parse().unwrap()
}

/// The page size and the words of every page of a PDF (all pages have the size of the first).
pub fn pdf_words(pdf: &Path) -> ((f64, f64), Vec<PdfWord>) {
    let out = pdf.with_extension("bbox.html");
    run(
        system_program("pdftotext", "poppler-utils"),
        &["-bbox", pdf.to_str().unwrap(), out.to_str().unwrap()],
    );
    let text = std::fs::read_to_string(out).unwrap();
    let first = &text[text.find("<page ").expect("a page")..];
    let page_tag = &first[..first.find('>').unwrap()];
    let size = (attribute(page_tag, "width"), attribute(page_tag, "height"));
    let mut words = Vec::new();
    for chunk in first.split("<word ").skip(1) {
        let tag_end = chunk.find('>').unwrap();
        let tag = &chunk[..tag_end];
        let text_end = chunk.find("</word>").unwrap();
        words.push(PdfWord {
            text: chunk[tag_end + 1..text_end].to_owned(),
            x_min: attribute(tag, "xMin"),
            y_min: attribute(tag, "yMin"),
            x_max: attribute(tag, "xMax"),
            y_max: attribute(tag, "yMax"),
        });
    }
    (size, words)
}

/// Asserts that every word of `pdf` lies inside its page (nothing cut at an edge).
pub fn assert_nothing_cut(pdf: &Path, what: &str) -> Vec<PdfWord> {
    let ((width, height), words) = pdf_words(pdf);
    for w in &words {
        assert!(
            w.x_min >= 0.0 && w.y_min >= 0.0 && w.x_max <= width && w.y_max <= height,
            "{what}: {:?} lies outside the {width}x{height} page",
            w.text
        );
    }
    words
}

/// What the QR codes on a PNG decode to.
pub fn qr_codes(png: &Path) -> Vec<String> {
    let output = Command::new(system_program("zbarimg", "zbar-tools"))
        .args(["--raw", "-q", "-Sdisable", "-Sqrcode.enable"])
        .arg(png)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "zbarimg found no code on {}: {}",
        png.display(),
        stderr(&output)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}
