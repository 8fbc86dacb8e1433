//! Bearer tokens: high-entropy secrets shown once, stored as SHA-256 hashes, compared in
//! constant time.

use rand::RngCore;
use sha2::Digest;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Every Muster provider token starts with this, so secret scanners can recognise one.
pub const TOKEN_PREFIX: &str = "mst_";

/// Every administrator API token starts with this.
pub const ADMIN_TOKEN_PREFIX: &str = "msa_";

/// Every application credential starts with this.
pub const APP_TOKEN_PREFIX: &str = "mapp_";

/// How many characters of a token a listing shows.
pub const SHOWN_PREFIX_LEN: usize = 12;

/// A freshly generated token: the secret (to show once) and what is stored.
#[derive(Clone)]
pub struct NewSecret {
    /// The secret itself. Shown once, never stored, never logged.
    pub secret: String,
    /// SHA-256 of the secret.
    pub hash: Vec<u8>,
    /// The first characters, safe to show in listings.
    pub prefix: String,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecret")
            .field("prefix", &self.prefix)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Generates a provider token with 256 bits from the operating system's random source.
pub fn generate() -> NewSecret {
    generate_with(TOKEN_PREFIX)
}

/// Generates a token with the given prefix.
pub fn generate_with(prefix: &str) -> NewSecret {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("{prefix}{}", hex::encode(bytes));
    let hash = hash(&secret);
    let prefix = secret.chars().take(SHOWN_PREFIX_LEN).collect();
    NewSecret {
        secret,
        hash,
        prefix,
    }
}

/// SHA-256 of a presented secret.
pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Compares two hashes in constant time.
pub fn hashes_match(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_hash_consistently() {
        let a = generate();
        let b = generate();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with(TOKEN_PREFIX));
        assert_eq!(a.secret.len(), TOKEN_PREFIX.len() + 64);
        assert_eq!(a.hash, hash(&a.secret));
        assert!(hashes_match(&a.hash, &hash(&a.secret)));
        assert!(!hashes_match(&a.hash, &b.hash));
        assert!(!format!("{a:?}").contains(&a.secret));
        assert!(a.secret.starts_with(&a.prefix));
    }
}
