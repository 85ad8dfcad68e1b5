//! Outside tools and data the tests compare against: the Python virtualenv made by
//! `scripts/setup`, and the official test vectors when the developer or CI has them.

use std::path::{Path, PathBuf};

/// The repository root (the workspace this crate belongs to).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("hsm-testing lives one level below the repository root")
        .to_path_buf()
}

/// The virtualenv with the pinned Python tools: `BREAKGLASS_VENV`, else `<repo>/.venv`.
pub fn venv_dir() -> PathBuf {
    std::env::var_os("BREAKGLASS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv"))
}

/// Path to a program installed in the virtualenv (`python`, `moto_server`, `aws`, `shamir`).
///
/// # Panics
/// When the program is missing: the test cannot compare against it, and says how to fix that.
pub fn venv_program(name: &str) -> PathBuf {
    let path = venv_dir().join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup (it installs the pinned Python tools into {})",
        path.display(),
        venv_dir().display()
    );
    path
}

/// The directory of the official test vectors (`slip39-vectors.json`, `hpke-rfc9180-base.json`):
/// `BREAKGLASS_VECTORS_DIR` when set, otherwise the repository's `test-vectors/`.
///
/// # Panics
/// When the directory does not hold the vectors: a vector test never passes without having
/// checked anything.
pub fn vectors_dir() -> PathBuf {
    let dir = std::env::var_os("BREAKGLASS_VECTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-vectors"));
    for file in ["slip39-vectors.json", "hpke-rfc9180-base.json"] {
        assert!(
            dir.join(file).is_file(),
            "{} is missing: the official vectors (see test-vectors/README.md)",
            dir.join(file).display()
        );
    }
    dir
}

/// The key fields of an RFC 9180 vector (`ikmE`, `pkEm`, `skEm`, `ikmR`, `pkRm`, `skRm`) and the real `info`.
///
/// The shared file was extracted from the RFC's text and carries the key fields run into the
/// `info` string as `<info hex>ikmE:<hex>pkEm:<hex>...`; a file with separate fields works too.
pub fn hpke_vector_keys(
    vector: &serde_json::Value,
) -> (Vec<u8>, std::collections::HashMap<String, Vec<u8>>) {
    const NAMES: [&str; 6] = ["ikmE", "pkEm", "skEm", "ikmR", "pkRm", "skRm"];
    let mut fields = std::collections::HashMap::new();
    let raw = vector["info"].as_str().expect("info");
    let mut positions: Vec<(usize, &str)> = NAMES
        .iter()
        .filter_map(|name| raw.find(&format!("{name}:")).map(|at| (at, *name)))
        .collect();
    positions.sort();
    let info_end = positions.first().map_or(raw.len(), |(at, _)| *at);
    let info = hex::decode(&raw[..info_end]).expect("info hex");
    for (i, (at, name)) in positions.iter().enumerate() {
        let start = at + name.len() + 1;
        let end = positions.get(i + 1).map_or(raw.len(), |(next, _)| *next);
        fields.insert(
            (*name).to_owned(),
            hex::decode(raw[start..end].trim()).expect("key field hex"),
        );
    }
    for name in NAMES {
        if let Some(value) = vector[name].as_str() {
            fields.insert(name.to_owned(), hex::decode(value).expect("key field hex"));
        }
    }
    for name in NAMES {
        assert!(fields.contains_key(name), "vector lacks {name}");
    }
    (info, fields)
}

/// A program installed by `cargo install` (`rage`, `rage-keygen`): on PATH, or in cargo's bin
/// directory.
///
/// # Panics
/// When it is not installed, saying how to install it.
pub fn cargo_program(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.exists());
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin").join(name))
        .filter(|p| p.exists());
    on_path.or(cargo_home).unwrap_or_else(|| {
        panic!("{name} is not installed: run scripts/setup (it runs cargo install rage)")
    })
}

/// A program from a Debian package that `scripts/setup` installs (`chromium`, `pdfinfo` from
/// poppler-utils, `zbarimg` from zbar-tools, `groff`), found on PATH.
///
/// # Panics
/// When it is not installed, naming the package and how to install it.
pub fn system_program(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed: run scripts/setup (it installs the Debian package {package}), \
                 or apt-get install {package}"
            )
        })
}
