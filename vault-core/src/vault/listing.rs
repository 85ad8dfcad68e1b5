//! Listing credentials without parsing every envelope: `credentials/.index.json`, a cache of
//! what `list` and `status` show of each envelope (name, kind, sealed time, token count,
//! metadata), keyed by the SHA-256 of the envelope file's exact bytes.
//!
//! The cache is never an authority. Each listing reads every envelope file and hashes it; an
//! entry whose hash is the file's is what parsing those bytes gave when the entry was made, and
//! any other file is parsed and checked in full (format, canonical form, vault, name) as
//! [`Vault::envelope`] does. The index is then rewritten atomically if it disagreed with the
//! files in any way; a vault directory that cannot be written (a read-only copy) is listed all
//! the same. Someone who can write the index can write the envelopes beside it, whose public
//! fields a listing shows unauthenticated either way: opening an envelope checks every byte.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::envelope::Envelope;

use super::Vault;

/// The index file, inside `credentials/` (its leading dot keeps it out of the credential
/// names).
const INDEX: &str = "credentials/.index.json";
/// The index format.
const INDEX_FORMAT: &str = "breakglass-credential-index/1";

/// What a listing shows of one credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listing {
    /// The kind, as the envelope names it.
    pub kind: String,
    /// When it was sealed (RFC 3339 UTC).
    pub sealed: String,
    /// How many token stanzas the envelope has.
    pub tokens: usize,
    /// The envelope's public metadata.
    pub metadata: BTreeMap<String, String>,
}

impl Listing {
    fn of(envelope: &Envelope) -> Listing {
        Listing {
            kind: envelope.kind.as_str().to_owned(),
            sealed: envelope.created.clone(),
            tokens: envelope.hsm_stanzas.len(),
            metadata: envelope.metadata.clone(),
        }
    }
}

/// One credential as a listing found it.
#[derive(Debug)]
pub enum Listed {
    /// The envelope file parsed and checked (now or when its index entry was made).
    Sealed {
        /// The credential's name.
        name: String,
        /// What it shows.
        listing: Listing,
    },
    /// The envelope file could not be read or is not a valid envelope of this vault.
    Damaged {
        /// The credential's name.
        name: String,
        /// Why.
        error: crate::Error,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Index {
    format: String,
    vault_id: String,
    /// Credential name to (SHA-256 of the envelope file, what it shows).
    entries: BTreeMap<String, (String, Listing)>,
}

impl Vault {
    /// Calls `each` with every credential, in name order, as soon as it is known (so a caller
    /// can print as it goes), through the index checked against every envelope file; rewrites
    /// the index when it disagreed. Stops at the first error `each` returns.
    pub fn each_credential<E: From<crate::Error>>(
        &self,
        mut each: impl FnMut(Listed) -> Result<(), E>,
    ) -> Result<(), E> {
        let index_path = self.store.path(INDEX);
        let cached = std::fs::read(&index_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Index>(&bytes).ok())
            .filter(|i| i.format == INDEX_FORMAT && i.vault_id == self.manifest().vault_id)
            .unwrap_or_default();
        let mut fresh = Index {
            format: INDEX_FORMAT.to_owned(),
            vault_id: self.manifest().vault_id.clone(),
            entries: BTreeMap::new(),
        };
        let names = self.store.credentials().map_err(crate::Error::from)?;
        for name in names {
            let listed = match self.store.read_credential(&name) {
                Ok((path, bytes)) => {
                    let hash = hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes));
                    match cached.entries.get(&name) {
                        Some((known, listing)) if *known == hash => {
                            fresh.entries.insert(name.clone(), (hash, listing.clone()));
                            Listed::Sealed {
                                name,
                                listing: listing.clone(),
                            }
                        }
                        _ => match self.parse_envelope(&name, &bytes, path) {
                            Ok(listing) => {
                                fresh.entries.insert(name.clone(), (hash, listing.clone()));
                                Listed::Sealed { name, listing }
                            }
                            Err(error) => Listed::Damaged { name, error },
                        },
                    }
                }
                Err(e) => Listed::Damaged {
                    name,
                    error: e.into(),
                },
            };
            each(listed)?;
        }
        if fresh.entries != cached.entries || cached.format != INDEX_FORMAT {
            // A cache: a vault directory that cannot be written is listed all the same.
            if let Ok(bytes) = serde_json::to_vec(&fresh) {
                let _ = crate::store::write_atomic(&index_path, &bytes);
            }
        }
        Ok(())
    }

    fn parse_envelope(
        &self,
        name: &str,
        bytes: &[u8],
        path: PathBuf,
    ) -> Result<Listing, crate::Error> {
        let envelope = Envelope::from_bytes(bytes, &path)?;
        envelope.check_identity(&self.manifest().vault_id, name, &path)?;
        Ok(Listing::of(&envelope))
    }
}
