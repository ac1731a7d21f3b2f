//! C2SP signed notes and tlog checkpoints, with Ed25519 keys: what a node signs its Merkle
//! tree heads with, and what any verifier (this one, or Go's `golang.org/x/mod/sumdb/note`)
//! checks offline.
//!
//! ```text
//! checkpoint body (c2sp.org/tlog-checkpoint):   signed note (c2sp.org/signed-note):
//!   <origin>\n                                    <body>\n
//!   <tree size, decimal>\n                        — <key name> base64(key id[4] || signature[64])\n
//!   base64(<root hash>)\n                         ...one line per signature
//!   [<extension line>\n ...]
//!
//! key id       = SHA-256(<key name> || "\n" || 0x01 || public key[32])[..4]
//! verifier key = <key name>+<key id, hex>+base64(0x01 || public key)
//! signer key   = PRIVATE+KEY+<key name>+<key id, hex>+base64(0x01 || seed[32])
//! ```
//!
//! The Ed25519 signature is over the body's bytes exactly. Every failure is named
//! ([`NoteError`]); nothing here panics on untrusted text.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use super::merkle::{MERKLE_HASH_LEN, MerkleHash};

/// The algorithm byte of an Ed25519 note key.
const ALG_ED25519: u8 = 0x01;
/// Bytes of a key id.
const KEY_ID_LEN: usize = 4;
/// What leads a signature line.
const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// What leads a signer key.
const SIGNER_PREFIX: &str = "PRIVATE+KEY+";
/// Longest note this module parses (a checkpoint is a few hundred bytes).
pub const NOTE_BYTES_MAX: usize = 64 * 1024;

/// Why a note, a key or a checkpoint is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key string is malformed.
    #[error("malformed note key: {0}")]
    BadKey(&'static str),
    /// The note's text is malformed.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// No signature line is by the verifier's key (name and key id).
    #[error("the note has no signature by {name}")]
    NoSignature {
        /// The verifier key's name.
        name: String,
    },
    /// The signature by the verifier's key does not verify over the text.
    #[error("the signature by {name} does not verify")]
    BadSignature {
        /// The verifier key's name.
        name: String,
    },
    /// The checkpoint body is malformed.
    #[error("malformed checkpoint: {0}")]
    BadCheckpoint(&'static str),
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; KEY_ID_LEN] {
    let digest: [u8; 32] = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update([ALG_ED25519])
        .chain_update(public)
        .finalize()
        .into();
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::BadKey(
            "a key name is non-empty, without '+' or whitespace",
        ));
    }
    Ok(())
}

/// Splits `<name>+<hex id>+<base64 key>`; checks the id against the key bytes after decoding.
fn split_key(text: &str) -> Result<(&str, [u8; KEY_ID_LEN], Vec<u8>), NoteError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::BadKey("expected <name>+<key id>+<key>"));
    };
    check_name(name)?;
    let id: [u8; KEY_ID_LEN] = hex::decode(id)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(NoteError::BadKey("the key id is not 8 hex digits"))?;
    let key = BASE64
        .decode(key)
        .map_err(|_| NoteError::BadKey("the key is not base64"))?;
    Ok((name, id, key))
}

fn alg_key(key: &[u8]) -> Result<[u8; 32], NoteError> {
    match key.split_first() {
        Some((&ALG_ED25519, rest)) => rest
            .try_into()
            .map_err(|_| NoteError::BadKey("an Ed25519 key is 32 bytes")),
        _ => Err(NoteError::BadKey("not an Ed25519 (algorithm 1) key")),
    }
}

/// A note verifier key: a name and an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: [u8; KEY_ID_LEN],
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses a verifier key (`<name>+<key id>+<base64(0x01 || public key)>`).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let (name, id, key) = split_key(text.trim())?;
        let public = alg_key(&key)?;
        if key_id(name, &public) != id {
            return Err(NoteError::BadKey("the key id does not match the name and key"));
        }
        let key =
            VerifyingKey::from_bytes(&public).map_err(|_| NoteError::BadKey("not an Ed25519 public key"))?;
        Ok(Self {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks that `note` carries a valid signature by this key; returns the signed text.
    pub fn verify<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let (text, signatures) = split_note(note)?;
        let mut found = false;
        for (name, id, signature) in signatures {
            if name != self.name || id != self.id {
                continue;
            }
            found = true;
            let signature = ed25519_dalek::Signature::from_bytes(&signature);
            if self.key.verify(text.as_bytes(), &signature).is_ok() {
                return Ok(text);
            }
        }
        Err(match found {
            true => NoteError::BadSignature {
                name: self.name.clone(),
            },
            false => NoteError::NoSignature {
                name: self.name.clone(),
            },
        })
    }
}

impl std::fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut key = vec![ALG_ED25519];
        key.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{}+{}", self.name, hex::encode(self.id), BASE64.encode(key))
    }
}

/// A note signer key: a name and an Ed25519 signing key.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    id: [u8; KEY_ID_LEN],
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSigner({})", self.verifier())
    }
}

impl NoteSigner {
    /// A signer named `name` with the Ed25519 key of `seed`.
    pub fn new(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(seed);
        Ok(Self {
            name: name.to_owned(),
            id: key_id(name, key.verifying_key().as_bytes()),
            key,
        })
    }

    /// Parses a signer key (`PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>`).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let rest = text
            .trim()
            .strip_prefix(SIGNER_PREFIX)
            .ok_or(NoteError::BadKey("a signer key starts with PRIVATE+KEY+"))?;
        let (name, id, key) = split_key(rest)?;
        let signer = Self::new(name, &alg_key(&key)?)?;
        if signer.id != id {
            return Err(NoteError::BadKey("the key id does not match the name and key"));
        }
        Ok(signer)
    }

    /// The signer key's text (secret: store it as a secret).
    pub fn to_secret_string(&self) -> String {
        let mut key = vec![ALG_ED25519];
        key.extend_from_slice(self.key.as_bytes());
        format!(
            "{SIGNER_PREFIX}{}+{}+{}",
            self.name,
            hex::encode(self.id),
            BASE64.encode(key)
        )
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` (a note body, ending with a newline): the signed note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let signature = self.key.sign(text.as_bytes());
        let mut line = self.id.to_vec();
        line.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(line)
        ))
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("the text does not end with a newline"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed("the text holds a control character"));
    }
    Ok(())
}

type SignatureLine<'a> = (&'a str, [u8; KEY_ID_LEN], [u8; 64]);

/// Splits a signed note into its text and its signature lines.
fn split_note(note: &str) -> Result<(&str, Vec<SignatureLine<'_>>), NoteError> {
    if note.len() > NOTE_BYTES_MAX {
        return Err(NoteError::Malformed("longer than a note may be"));
    }
    let split = note
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let (text, signatures) = (&note[..=split], &note[split + 2..]);
    check_text(text)?;
    if !signatures.ends_with('\n') {
        return Err(NoteError::Malformed("the signatures do not end with a newline"));
    }
    let mut lines = Vec::new();
    for line in signatures.lines() {
        let rest = line.strip_prefix(SIGNATURE_PREFIX).ok_or(NoteError::Malformed(
            "a signature line does not start with an em dash",
        ))?;
        let (name, signature) = rest
            .split_once(' ')
            .ok_or(NoteError::Malformed("a signature line has no key name"))?;
        let bytes = BASE64
            .decode(signature)
            .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
        if bytes.len() != KEY_ID_LEN + 64 {
            continue; // Another algorithm's signature: not ours to check.
        }
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&bytes[..KEY_ID_LEN]);
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&bytes[KEY_ID_LEN..]);
        lines.push((name, id, sig));
    }
    if lines.is_empty() && signatures.is_empty() {
        return Err(NoteError::Malformed("no signature lines"));
    }
    Ok((text, lines))
}

/// A tlog checkpoint: the body a node signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin (its name).
    pub origin: String,
    /// The tree size.
    pub size: u64,
    /// The tree's root hash.
    pub root: MerkleHash,
    /// Extension lines, in order (without their newlines).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The body text (every line ends with a newline).
    pub fn to_text(&self) -> String {
        let mut text = format!("{}\n{}\n{}\n", self.origin, self.size, BASE64.encode(self.root));
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Parses a body text.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(NoteError::BadCheckpoint("the body does not end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|origin| !origin.is_empty())
            .ok_or(NoteError::BadCheckpoint("no origin"))?;
        let size = lines
            .next()
            .filter(|size| !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|size| (size == "0" || !size.starts_with('0')).then_some(size))
            .and_then(|size| size.parse::<u64>().ok())
            .ok_or(NoteError::BadCheckpoint("the tree size is not a decimal number"))?;
        let root: MerkleHash = lines
            .next()
            .and_then(|root| BASE64.decode(root).ok())
            .and_then(|root| <[u8; MERKLE_HASH_LEN]>::try_from(root).ok())
            .ok_or(NoteError::BadCheckpoint(
                "the root hash is not 32 bytes of base64",
            ))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(NoteError::BadCheckpoint("an empty extension line"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// Verifies `note` with `verifier` and parses its checkpoint.
    pub fn open(note: &str, verifier: &NoteVerifier) -> Result<Self, NoteError> {
        Self::parse(verifier.verify(note)?)
    }

    /// Returns the value of the first extension line that starts with `key` and a space.
    pub fn extension(&self, key: &str) -> Option<&str> {
        self.extensions
            .iter()
            .find_map(|line| line.strip_prefix(key).and_then(|rest| rest.strip_prefix(' ')))
    }
}
