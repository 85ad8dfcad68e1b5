//! Printable share cards: one HTML page per custodian share, with the words, a QR code of the
//! same words, the custodian's group and thresholds, and the date this share set was issued.
//! The card of a share encrypted to its custodian's key carries no words: it says which file
//! holds the share and which key opens it.
//!
//! The print CSS sets no paper size, so the card takes whatever the print dialog picks; it is
//! laid out to fit the smaller of A4 and US Letter in each direction (186 × 255 mm inside
//! 12 mm margins), on one page, and the end-to-end test prints it on both sizes with Chromium.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use secrecy::ExposeSecret;
use vault_core::manifest::{Manifest, Quorum};
use vault_core::store::write_new_secret_file;
use vault_core::vault::CustodianShare;

// Names from the manifest shown with control characters visible, then HTML-escaped.
use crate::printable::html_text as html_escape;

/// When the share set on a card was made, and when this card was printed.
#[derive(Debug, Clone)]
pub struct Issue {
    /// The time the share set was issued (RFC 3339), when known.
    pub set_issued: Option<String>,
    /// The time this card was made (RFC 3339).
    pub printed: String,
}

impl Issue {
    /// A share set issued now, its cards printed now.
    pub fn now() -> Issue {
        let now = vault_core::clock::rfc3339(vault_core::clock::now_unix());
        Issue {
            set_issued: Some(now.clone()),
            printed: now,
        }
    }

    fn reissue(&self) -> bool {
        self.set_issued.as_deref().map(date) != Some(date(&self.printed))
    }
}

/// Where a share encrypted to its custodian's key is, for its card.
#[derive(Debug, Clone)]
pub struct EncryptedShare {
    /// The share file (`<custodian>.share.age`).
    pub file: PathBuf,
    /// The recipient's fingerprint (`age1...`, or `ssh-ed25519 SHA256:...`), when known.
    pub recipient: Option<String>,
}

/// The date part of an RFC 3339 time.
fn date(time: &str) -> &str {
    time.get(..10).unwrap_or(time)
}

/// The share set `issued` belongs to.
pub fn set_of<'m>(m: &'m Manifest, issued: &CustodianShare) -> &'m Quorum {
    match (&m.recovery, issued.recovery) {
        (Some(recovery), true) => recovery,
        _ => &m.quorum,
    }
}

/// The file name stem of a share: `alice` or `alice.recovery`.
pub fn stem(issued: &CustodianShare) -> String {
    if issued.recovery {
        format!("{}.recovery", issued.custodian)
    } else {
        issued.custodian.clone()
    }
}

const STYLE: &str = "\
@page{margin:12mm}\
*{box-sizing:border-box}\
html,body{margin:0;background:#fff;color:#000}\
body{font-family:'DejaVu Sans',Arial,sans-serif;font-size:10.5pt;line-height:1.35}\
.card{width:100%;max-width:180mm;margin:0 auto;padding:6mm;border:.4mm solid #000;\
break-inside:avoid;page-break-inside:avoid;break-after:page;page-break-after:always}\
@media screen{body{padding:8mm}}\
h1{font-size:15pt;margin:0 0 2mm}\
h2{font-size:11pt;margin:4mm 0 1mm}\
p{margin:1mm 0}\
.facts{display:flex;gap:6mm;align-items:flex-start}\
.facts .text{flex:1;min-width:0;overflow-wrap:anywhere}\
.qr{flex:none;width:52mm}\
.qr svg{display:block;width:52mm;height:52mm}\
.qr p{font-size:8pt;color:#444}\
.fp{font-family:'DejaVu Sans Mono',monospace;font-size:11pt;letter-spacing:.05em;overflow-wrap:anywhere}\
ol.words{columns:3;column-gap:6mm;list-style:none;padding:0;margin:3mm 0;\
font-family:'DejaVu Sans Mono',monospace;font-size:11.5pt}\
ol.words li{break-inside:avoid;padding:.6mm 0;border-bottom:.2mm dotted #999}\
ol.words li span{color:#666}\
ol.steps{margin:1mm 0;padding-left:6mm}\
.small{font-size:8.5pt;color:#333}\
code{white-space:nowrap;font-family:'DejaVu Sans Mono',monospace;font-size:9pt}";

/// What the card of a share encrypted to its custodian shows instead of the words and the QR
/// code, and the emergency step that goes with it.
fn encrypted_parts(encrypted: &EncryptedShare) -> (String, String, String) {
    let file = encrypted.file.file_name().map_or_else(
        || encrypted.file.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    let key = match &encrypted.recipient {
        Some(fingerprint) => format!(
            "your key <span class=\"fp\">{}</span>",
            html_escape(fingerprint)
        ),
        None => "your key (the one whose identity opened it)".to_owned(),
    };
    (
        format!(
            "<h2>Your share is not on this card</h2><p>It is in the file <code>{file}</code>, \
             encrypted to {key}. Keep that file; only your identity (age identity file or SSH \
             private key) opens it. This card has no words and no QR code.</p>",
            file = html_escape(&file),
        ),
        format!(
            "<li>Give the coordinator's <code>breakglass unseal</code> (or your <code>breakglass \
             ceremony contribute</code>) <code>--share-file {file} --identity YOUR-KEY</code>, or \
             open it with <code>age -d -i YOUR-KEY {file}</code> and type the words when asked.</li>",
            file = html_escape(&file),
        ),
        format!(
            "<code>breakglass share verify --share-file {file} --identity YOUR-KEY</code>",
            file = html_escape(&file),
        ),
    )
}

/// The card for `issued`, a share of the vault `m`; without its words when the share is
/// `encrypted` to its custodian.
pub fn html(
    m: &Manifest,
    identity: &str,
    issued: &CustodianShare,
    issue: &Issue,
    encrypted: Option<&EncryptedShare>,
) -> String {
    let mnemonic = issued.share.to_mnemonic();
    let (body, use_step, verify) = match encrypted {
        Some(encrypted) => encrypted_parts(encrypted),
        None => {
            let words: String = mnemonic
                .expose_secret()
                .split(' ')
                .enumerate()
                .map(|(i, w)| format!("<li><span>{:>2}</span> {}</li>", i + 1, html_escape(w)))
                .collect();
            (
                format!("<ol class=\"words\">{words}</ol>"),
                "<li>Type these words when <code>breakglass unseal</code> or <code>breakglass \
                 ceremony contribute</code> asks for them (input is hidden).</li>"
                    .to_owned(),
                "<code>breakglass share verify</code>".to_owned(),
            )
        }
    };
    let qr = match encrypted {
        Some(_) => String::new(),
        None => format!(
            "<div class=\"qr\">{}<p>The QR code holds the same words, for SLIP-39 tools that scan.</p></div>",
            qr_svg(mnemonic.expose_secret())
        ),
    };
    let set = set_of(m, issued);
    let info = issued.share.info();
    let group = set.groups.get(usize::from(info.group_index));
    let group_line = match group {
        Some(g) => format!(
            "Group <b>{}</b>: member {} of {}; <b>{} of {}</b> members of this group needed",
            html_escape(&g.name),
            info.member_index + 1,
            g.members.len(),
            g.threshold,
            g.members.len()
        ),
        None => format!("Group {}", html_escape(&issued.group)),
    };
    let groups_line = if set.groups.len() > 1 {
        format!(
            "<p><b>{} of {}</b> groups needed</p>",
            set.group_threshold,
            set.groups.len()
        )
    } else {
        String::new()
    };
    let issued_line = match &issue.set_issued {
        Some(t) => format!("Share set #{} issued <b>{}</b>", info.identifier, date(t)),
        None => format!(
            "Share set #{} (its issue date is not in the audit log)",
            info.identifier
        ),
    };
    let printed_line = if issue.reissue() {
        format!("; this card reissued {}", date(&issue.printed))
    } else {
        String::new()
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>breakglass {kind_plain}: {custodian}</title><style>{STYLE}</style></head><body>\
         <div class=\"card\"><h1>breakglass {kind}</h1>\
         <div class=\"facts\"><div class=\"text\">\
         <p>Custodian: <b>{custodian}</b></p><p>{group_line}</p>{groups_line}\
         <p>{issued_line}{printed_line}</p>\
         <p>Vault {vault_id}</p><p>Fingerprint:<br><span class=\"fp\">{fingerprint}</span></p>\
         <p class=\"small\">A card with another share set number or an older issue date is \
         superseded: destroy it.</p></div>\
         {qr}</div>\
         {body}\
         <h2>In an emergency</h2><ol class=\"steps\">\
         <li>Check that the fingerprint the coordinator shows matches this card.</li>\
         {use_step}\
         <li>Never read the words aloud, photograph them or send them unencrypted.</li></ol>\
         <p class=\"small\">Check your share any day: {verify}. Lost or damaged \
         card: <code>breakglass share card --share-file FILE --out DIR</code> prints it again. These are \
         SLIP-39 words: any SLIP-39 implementation can read them.</p>\
         </div></body></html>\n",
        kind = if issued.recovery {
            "RECOVERY share card <span class=\"small\">(only for <code>breakglass recover</code>, when every \
             token is lost; keep it apart from the normal card)</span>"
        } else {
            "share card"
        },
        kind_plain = if issued.recovery {
            "recovery share card"
        } else {
            "share card"
        },
        custodian = html_escape(&issued.custodian),
        vault_id = html_escape(&m.vault_id),
        fingerprint = identity,
    )
}

/// The mnemonic as an inline SVG QR code (medium error correction), without the XML
/// declaration the renderer puts first (it has no place inside HTML).
fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(240, 240)
                .build();
            match svg.find("<svg") {
                Some(start) => svg[start..].to_owned(),
                None => svg,
            }
        }
        Err(_) => String::from("(no QR code: the share is too long for one)"),
    }
}

/// Writes one card per share into `dir` (made 0700 if missing), each 0600 and never over an
/// existing file; the shares `encrypted` names (by [`stem`]) get a card without words. Returns
/// the paths written.
pub fn write(
    m: &Manifest,
    identity: &str,
    shares: &[CustodianShare],
    dir: &Path,
    issue: &Issue,
    encrypted: &std::collections::BTreeMap<String, EncryptedShare>,
) -> Result<Vec<PathBuf>> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    shares
        .iter()
        .map(|issued| {
            let path = dir.join(format!("{}.html", stem(issued)));
            let card = html(m, identity, issued, issue, encrypted.get(&stem(issued)));
            write_new_secret_file(&path, card.as_bytes())?;
            Ok(path)
        })
        .collect()
}
