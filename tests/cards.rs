//! End-to-end: share cards as a printer sees them. A card is rendered by headless Chromium to
//! PDF on A4 and on US Letter and to PNG; the PDF must be one page with every word of the share
//! inside the page, and the QR code on the PNG and on the printed page must decode back to the
//! share. A card printed again from a share file (`share card`) names the same share set.

use std::path::Path;

use hsm_testing::tools::system_program;

mod support;

use support::browser::{
    PAPERS, assert_nothing_cut, pdf_pages, print_to_pdf, qr_codes, run, screenshot,
};
use support::{Env, stderr};

/// A vault of two groups (ops: 2 of ann, bo, cy; exec: 2 of dee, eve; both groups needed), with
/// share files and cards.
fn two_group_vault() -> Env {
    let env = Env::new();
    env.init_groups(
        &["ops:2:ann,bo,cy", "exec:2:dee,eve"],
        2,
        &["--share-cards", env.path("cards").to_str().unwrap()],
    );
    env
}

/// The words of a share file.
fn words_of(share_file: &Path) -> String {
    std::fs::read_to_string(share_file)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    vault_core::clock::rfc3339(secs)[..10].to_owned()
}

/// The card prints on one page of A4 and of Letter with every word inside the page, and its QR
/// code decodes back to the share, on screen and on paper.
#[test]
fn a_share_card_prints_on_one_page_of_a4_and_letter_and_its_qr_code_decodes_to_the_share() {
    let env = two_group_vault();
    let card = env.path("cards/ann.html");
    let words = words_of(&env.path("shares/ann.share"));
    let work = env.path("render");
    std::fs::create_dir(&work).unwrap();

    for size in PAPERS {
        let pdf = print_to_pdf(&work, &card, size);
        assert_eq!(pdf_pages(&pdf), 1, "the card takes one page of {size}");
        let on_page = assert_nothing_cut(&pdf, size);
        let printed: Vec<&str> = on_page.iter().map(|w| w.text.as_str()).collect();
        for word in words.split(' ') {
            assert!(
                printed.contains(&word),
                "{size}: the share word {word:?} is not in the PDF's text"
            );
        }
        for fact in ["ann", "ops:", "issued", &today()] {
            assert!(printed.contains(&fact), "{size}: {fact:?} is not printed");
        }
        // The printed page, scanned back: its QR code holds the share.
        let scan = work.join(format!("scan-{size}"));
        run(
            system_program("pdftoppm", "poppler-utils"),
            &[
                "-png",
                "-r",
                "150",
                "-singlefile",
                pdf.to_str().unwrap(),
                scan.to_str().unwrap(),
            ],
        );
        assert_eq!(
            qr_codes(&scan.with_extension("png")),
            vec![words.clone()],
            "{size}: the printed QR code"
        );
    }

    let png = work.join("card.png");
    screenshot(&work, &card, &png, "900,1300");
    assert_eq!(qr_codes(&png), vec![words], "the on-screen QR code");
    if let Some(keep) = std::env::var_os("BREAKGLASS_KEEP_CARD_PNG") {
        std::fs::copy(&png, keep).unwrap();
    }
}

/// The card says whose share it is, in which group, how many are needed and when this share
/// set was issued; it holds no XML declaration.
#[test]
fn a_share_card_names_the_group_the_thresholds_and_the_issue_date_of_its_share_set() {
    let env = two_group_vault();
    let html = std::fs::read_to_string(env.path("cards/dee.html")).unwrap();
    assert!(!html.contains("<?xml"), "no XML declaration inside HTML");
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("@page{margin:12mm}"), "print CSS");
    assert!(
        html.contains(
            "Group <b>exec</b>: member 1 of 2; <b>2 of 2</b> members of this group needed"
        ),
        "{html}"
    );
    assert!(html.contains("<b>2 of 2</b> groups needed"), "{html}");
    assert!(
        html.contains(&format!("issued <b>{}</b>", today())),
        "{html}"
    );
    let ann = std::fs::read_to_string(env.path("cards/ann.html")).unwrap();
    assert!(ann.contains("<b>2 of 3</b> members of this group needed"));
}

fn share_set_of(html: &str) -> String {
    let start = html.find("Share set #").expect("a share set number") + "Share set #".len();
    html[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

/// `share card` prints a lost card again from the share file, naming the share set and the
/// date it was issued; after a rekey an old share gets no card, and a card is never overwritten.
#[test]
fn share_card_reissues_a_card_from_the_share_file_and_refuses_a_share_of_an_older_set() {
    let env = two_group_vault();
    let original = std::fs::read_to_string(env.path("cards/bo.html")).unwrap();
    let share = env.path("shares/bo.share");
    let out = env.ok(&[
        "share",
        "card",
        "--share-file",
        share.to_str().unwrap(),
        "--out",
        env.path("reissued").to_str().unwrap(),
    ]);
    assert!(out.contains("reissued/bo.html"), "{out}");
    let reissued = std::fs::read_to_string(env.path("reissued/bo.html")).unwrap();
    assert_eq!(share_set_of(&reissued), share_set_of(&original));
    let init_time = env.audit_events("init")[0]["time"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reissued.contains(&format!("issued <b>{}</b>", &init_time[..10])));
    for word in words_of(&share).split(' ') {
        assert!(reissued.contains(&format!("</span> {word}</li>")), "{word}");
    }
    assert_eq!(env.audit_events("share_card")[0]["custodians"][0], "bo");

    let again = env.run(&[
        "share",
        "card",
        "--share-file",
        share.to_str().unwrap(),
        "--out",
        env.path("reissued").to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("never overwrites"));

    // A new share set: the old share is no longer this vault's, the new one gets a card with
    // another share set number.
    let mut rekey = vec![
        "rekey".to_owned(),
        "--yes".to_owned(),
        "--shares-dir".to_owned(),
        env.path("new-shares").display().to_string(),
    ];
    rekey.extend(env.share_files(&["ann", "bo", "dee", "eve"]));
    env.ok(&rekey.iter().map(String::as_str).collect::<Vec<_>>());
    let old = env.run(&[
        "share",
        "card",
        "--share-file",
        share.to_str().unwrap(),
        "--out",
        env.path("after").to_str().unwrap(),
    ]);
    assert_eq!(old.status.code(), Some(3), "{}", stderr(&old));
    assert!(!env.path("after/bo.html").exists());
    env.ok(&[
        "share",
        "card",
        "--share-file",
        env.path("new-shares/bo.share").to_str().unwrap(),
        "--out",
        env.path("after").to_str().unwrap(),
    ]);
    let new_card = std::fs::read_to_string(env.path("after/bo.html")).unwrap();
    assert_ne!(share_set_of(&new_card), share_set_of(&original));
}
