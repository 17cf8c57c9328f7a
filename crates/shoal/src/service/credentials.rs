//! The HTTP credentials: made at first start, kept in `<state_dir>/credentials.toml` with mode
//! 0600, never logged. There is no default password: a fresh state folder gets a random one
//! (24 characters from a 62-letter alphabet, about 143 bits).

use std::path::{Path, PathBuf};

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::store::write_atomic;

/// A user name and password for HTTP Basic authentication.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Why the credentials file could not be read or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid credentials file: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Credentials {
    /// The file's path in a state folder.
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join("credentials.toml")
    }

    /// Reads the credentials, making and saving new random ones when there are none yet.
    pub fn load_or_create(state_dir: &Path) -> Result<Credentials, CredentialsError> {
        let path = Self::path_in(state_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let creds: Credentials =
                    toml::from_str(&text).map_err(|e| CredentialsError::Invalid {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                if creds.password.is_empty() {
                    return Err(CredentialsError::Invalid {
                        path,
                        message: "empty password".into(),
                    });
                }
                Ok(creds)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let creds = Credentials {
                    username: "shoal".into(),
                    password: random_secret(24),
                };
                let text = toml::to_string(&creds).map_err(|e| CredentialsError::Invalid {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                write_atomic(&path, text.as_bytes(), true)
                    .map_err(|source| CredentialsError::Io { path, source })?;
                Ok(creds)
            }
            Err(source) => Err(CredentialsError::Io { path, source }),
        }
    }

    /// Compares in time independent of where the first difference is.
    pub fn matches(&self, username: &str, password: &str) -> bool {
        constant_time_eq(self.username.as_bytes(), username.as_bytes())
            & constant_time_eq(self.password.as_bytes(), password.as_bytes())
    }
}

/// A random string of letters and digits.
pub fn random_secret(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// Equality whose time does not depend on the contents (only on the lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_kept_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = Credentials::load_or_create(dir.path()).unwrap();
        assert!(first.password.len() >= 24);
        let second = Credentials::load_or_create(dir.path()).unwrap();
        assert_eq!(first, second);
        assert!(
            !format!("{first:?}").contains(&first.password),
            "never shown in logs"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(Credentials::path_in(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(first.matches("shoal", &first.password));
        assert!(!first.matches("shoal", "wrong"));
    }

    #[test]
    fn two_state_folders_get_different_passwords() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        assert_ne!(
            Credentials::load_or_create(a.path()).unwrap().password,
            Credentials::load_or_create(b.path()).unwrap().password
        );
    }
}
