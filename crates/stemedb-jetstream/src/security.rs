//! NATS authentication and TLS for `[replication]`: the settings' checks, the secrets read once
//! at start, and the [`async_nats::ConnectOptions`] they make.
//!
//! Invariants: a node offers at most one authentication method (user and password, token,
//! nkey, or credentials file); every secret comes from a file or the environment, never from
//! the config's text; and no secret is ever logged or shown by `Debug` — only the file or
//! variable it came from.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{ReplicationConfig, ReplicationError};

/// Largest secret file read, in bytes: a password, token or nkey seed is under a hundred
/// bytes and a credentials file a few KiB (a JWT carrying many permissions), so a file past
/// this is the wrong file (a log, a device), not a secret.
pub const SECRET_FILE_BYTES_MAX: u64 = 64 << 10;

/// Checks the security settings of `config`; returns a message naming the bad field.
pub(crate) fn validate(config: &ReplicationConfig) -> Result<(), String> {
    let password = one_source(
        "password_file",
        &config.password_file,
        "password_env",
        &config.password_env,
    )?;
    let token = one_source("token_file", &config.token_file, "token_env", &config.token_env)?;
    match (&config.user, password) {
        (Some(user), _) if user.is_empty() => return Err("replication.user: an empty name".into()),
        (Some(_), false) => {
            return Err(
                "replication.user needs replication.password_file or replication.password_env (a password is \
                 never written in the config)"
                    .into(),
            );
        }
        (None, true) => {
            return Err("replication.password_file or password_env needs replication.user".into());
        }
        _ => {}
    }
    let methods: Vec<&str> = [
        (config.user.is_some(), "user/password_*"),
        (token, "token_*"),
        (config.nkey_seed_file.is_some(), "nkey_seed_file"),
        (config.credentials_file.is_some(), "credentials_file"),
    ]
    .into_iter()
    .filter_map(|(given, name)| given.then_some(name))
    .collect();
    if methods.len() > 1 {
        return Err(format!(
            "replication: give one NATS authentication method, not {}",
            methods.join(" and ")
        ));
    }
    for (field, path) in files(config) {
        if path.as_os_str().is_empty() {
            return Err(format!("replication.{field}: an empty path"));
        }
    }
    for (field, name) in [
        ("password_env", &config.password_env),
        ("token_env", &config.token_env),
    ] {
        if let Some(name) = name
            && (name.is_empty() || name.contains(['=', '\0']))
        {
            return Err(format!(
                "replication.{field} = {name:?}: the name of an environment variable (not empty, no '=')"
            ));
        }
    }
    if config.tls_cert_file.is_some() != config.tls_key_file.is_some() {
        return Err(
            "replication.tls_cert_file and tls_key_file go together: a client certificate and its key".into(),
        );
    }
    Ok(())
}

/// Returns true if one of the two sources of a secret is given; refuses both.
fn one_source<F, E>(
    file_field: &str,
    file: &Option<F>,
    env_field: &str,
    env: &Option<E>,
) -> Result<bool, String> {
    match (file, env) {
        (Some(_), Some(_)) => Err(format!(
            "replication.{file_field} and {env_field}: give one source for the secret, not both"
        )),
        (file, env) => Ok(file.is_some() || env.is_some()),
    }
}

/// Every file setting that is given, with its field name.
fn files(config: &ReplicationConfig) -> impl Iterator<Item = (&'static str, &PathBuf)> {
    [
        ("password_file", &config.password_file),
        ("token_file", &config.token_file),
        ("nkey_seed_file", &config.nkey_seed_file),
        ("credentials_file", &config.credentials_file),
        ("tls_ca_file", &config.tls_ca_file),
        ("tls_cert_file", &config.tls_cert_file),
        ("tls_key_file", &config.tls_key_file),
    ]
    .into_iter()
    .filter_map(|(field, path)| Some((field, path.as_ref()?)))
}

/// The one authentication method a node offers, with its secret read.
enum Method {
    /// No credentials: for servers that require none.
    Anonymous,
    UserPassword {
        user: String,
        password: String,
    },
    Token(String),
    /// A user nkey seed (`SU...`), checked at load.
    Nkey(String),
    /// A credentials file's text, checked at load.
    Credentials(String),
}

/// The authentication and TLS a node connects with, secrets read; see the module docs.
pub(crate) struct Security {
    method: Method,
    /// Where the secret came from, for errors: never the secret itself.
    described: String,
    tls_required: bool,
    tls_ca_file: Option<PathBuf>,
    tls_client: Option<(PathBuf, PathBuf)>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("method", &self.described)
            .field("tls_required", &self.tls_required)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_client", &self.tls_client)
            .finish()
    }
}

impl Security {
    /// Reads the secrets and checks the TLS files of a validated `config`; an error names the
    /// setting and the file or variable.
    pub(crate) fn load(config: &ReplicationConfig) -> Result<Self, ReplicationError> {
        let (method, described) = if let Some(user) = &config.user {
            let (password, from) = match (&config.password_file, &config.password_env) {
                (Some(path), _) => (read_secret("password_file", path)?, "password_file"),
                (None, Some(name)) => (env_secret("password_env", name)?, "password_env"),
                (None, None) => {
                    return Err(secret_error("user", user, "needs password_file or password_env"));
                }
            };
            let described = format!("user {user:?}, password from replication.{from}");
            let method = Method::UserPassword {
                user: user.clone(),
                password,
            };
            (method, described)
        } else if let Some(path) = &config.token_file {
            (
                Method::Token(read_secret("token_file", path)?),
                "token from replication.token_file".into(),
            )
        } else if let Some(name) = &config.token_env {
            (
                Method::Token(env_secret("token_env", name)?),
                "token from replication.token_env".into(),
            )
        } else if let Some(path) = &config.nkey_seed_file {
            let seed = read_secret("nkey_seed_file", path)?.trim().to_owned();
            let pair = nkeys::KeyPair::from_seed(&seed).map_err(|error| {
                secret_error(
                    "nkey_seed_file",
                    path.display(),
                    format!("not an nkey seed: {error}"),
                )
            })?;
            if pair.key_pair_type() != nkeys::KeyPairType::User {
                return Err(secret_error(
                    "nkey_seed_file",
                    path.display(),
                    "not a user nkey seed (a user seed starts with \"SU\")",
                ));
            }
            let described = format!("nkey {} from replication.nkey_seed_file", pair.public_key());
            (Method::Nkey(seed), described)
        } else if let Some(path) = &config.credentials_file {
            let text = read_secret("credentials_file", path)?;
            // Parsed here so that a malformed file fails at load, not at every connect.
            async_nats::ConnectOptions::new()
                .credentials(&text)
                .map_err(|error| secret_error("credentials_file", path.display(), error))?;
            (
                Method::Credentials(text),
                "credentials from replication.credentials_file".into(),
            )
        } else {
            (Method::Anonymous, "no credentials".into())
        };
        for (field, path) in [
            ("tls_ca_file", &config.tls_ca_file),
            ("tls_cert_file", &config.tls_cert_file),
            ("tls_key_file", &config.tls_key_file),
        ] {
            if let Some(path) = path {
                read_bounded(path).map_err(|reason| secret_error(field, path.display(), reason))?;
            }
        }
        Ok(Self {
            method,
            described,
            tls_required: config.tls_required,
            tls_ca_file: config.tls_ca_file.clone(),
            tls_client: config.tls_cert_file.clone().zip(config.tls_key_file.clone()),
        })
    }

    /// Returns the authentication offered, without its secret: for errors and logs.
    pub(crate) fn described(&self) -> &str {
        &self.described
    }

    /// Returns new connect options carrying the authentication and TLS settings.
    pub(crate) fn options(&self) -> Result<async_nats::ConnectOptions, ReplicationError> {
        let options = async_nats::ConnectOptions::new();
        let mut options = match &self.method {
            Method::Anonymous => options,
            Method::UserPassword { user, password } => {
                options.user_and_password(user.clone(), password.clone())
            }
            Method::Token(token) => options.token(token.clone()),
            Method::Nkey(seed) => options.nkey(seed.clone()),
            Method::Credentials(text) => options
                .credentials(text)
                .map_err(|error| secret_error("credentials_file", "(read at start)", error))?,
        };
        if let Some(ca) = &self.tls_ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.tls_client {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(options.require_tls(self.tls_required))
    }
}

fn secret_error(
    field: &'static str,
    location: impl std::fmt::Display,
    reason: impl std::fmt::Display,
) -> ReplicationError {
    ReplicationError::Secret {
        field,
        location: location.to_string(),
        reason: reason.to_string(),
    }
}

/// Reads a whole file of at most [`SECRET_FILE_BYTES_MAX`] bytes of UTF-8.
fn read_bounded(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|error| format!("cannot open it: {error}"))?;
    let mut text = String::new();
    file.take(SECRET_FILE_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|error| format!("cannot read it as UTF-8 text: {error}"))?;
    if text.len() as u64 > SECRET_FILE_BYTES_MAX {
        return Err(format!(
            "larger than {SECRET_FILE_BYTES_MAX} bytes: not a secret or certificate file"
        ));
    }
    Ok(text)
}

/// Reads the secret in the file at `path` (its trailing line break dropped); refuses an empty one.
fn read_secret(field: &'static str, path: &Path) -> Result<String, ReplicationError> {
    let text = read_bounded(path).map_err(|reason| secret_error(field, path.display(), reason))?;
    let secret = text.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        return Err(secret_error(field, path.display(), "the file is empty"));
    }
    Ok(secret.to_owned())
}

/// Reads the secret in environment variable `name`; refuses an unset or empty one.
fn env_secret(field: &'static str, name: &str) -> Result<String, ReplicationError> {
    match std::env::var(name) {
        Ok(secret) if !secret.is_empty() => Ok(secret),
        Ok(_) => Err(secret_error(field, name, "the environment variable is empty")),
        Err(std::env::VarError::NotPresent) => {
            Err(secret_error(field, name, "the environment variable is not set"))
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(secret_error(field, name, "the environment variable is not UTF-8"))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::ReplicationMode;

    fn jetstream() -> ReplicationConfig {
        ReplicationConfig {
            mode: ReplicationMode::Jetstream,
            ..ReplicationConfig::default()
        }
    }

    fn refused(config: &ReplicationConfig) -> String {
        config.validate().expect_err("the config was accepted")
    }

    #[test]
    fn two_authentication_methods_or_two_sources_of_one_secret_are_refused() {
        let mut both = jetstream();
        both.user = Some("node".into());
        both.password_file = Some("pw".into());
        both.token_env = Some("NATS_TOKEN".into());
        assert!(
            refused(&both).contains("user/password_* and token_*"),
            "{}",
            refused(&both)
        );

        let mut nkey_and_creds = jetstream();
        nkey_and_creds.nkey_seed_file = Some("a.nk".into());
        nkey_and_creds.credentials_file = Some("a.creds".into());
        assert!(refused(&nkey_and_creds).contains("nkey_seed_file and credentials_file"));

        let mut two_sources = jetstream();
        two_sources.token_file = Some("t".into());
        two_sources.token_env = Some("T".into());
        assert!(refused(&two_sources).contains("replication.token_file and token_env"));
    }

    #[test]
    fn a_user_needs_a_password_source_and_a_client_certificate_its_key() {
        let mut user = jetstream();
        user.user = Some("node".into());
        assert!(refused(&user).contains("replication.user needs"));
        let mut password = jetstream();
        password.password_env = Some("PW".into());
        assert!(refused(&password).contains("needs replication.user"));
        let mut bad_env = jetstream();
        bad_env.token_env = Some("A=B".into());
        assert!(refused(&bad_env).contains("replication.token_env"));
        let mut cert = jetstream();
        cert.tls_cert_file = Some("node.pem".into());
        assert!(refused(&cert).contains("tls_cert_file and tls_key_file"));
        let mut empty = jetstream();
        empty.tls_ca_file = Some("".into());
        assert!(refused(&empty).contains("replication.tls_ca_file: an empty path"));
    }

    #[test]
    fn secrets_are_read_from_files_and_a_bad_file_is_named_with_its_field() {
        let dir = tempfile::TempDir::new().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let mut config = jetstream();
        config.user = Some("node".into());
        config.password_file = Some(write("pw", "s3cret\n"));
        let security = Security::load(&config).unwrap();
        assert!(matches!(&security.method, Method::UserPassword { password, .. } if password == "s3cret"));
        assert!(
            !format!("{security:?}").contains("s3cret"),
            "Debug shows no secret"
        );

        config.password_file = Some(write("empty", "\n"));
        let error = Security::load(&config).unwrap_err();
        assert!(
            matches!(
                &error,
                ReplicationError::Secret {
                    field: "password_file",
                    ..
                }
            ),
            "{error}"
        );

        let mut nkey = jetstream();
        let pair = nkeys::KeyPair::new_user();
        nkey.nkey_seed_file = Some(write("good.nk", &format!("{}\n", pair.seed().unwrap())));
        let loaded = Security::load(&nkey).unwrap();
        assert!(loaded.described().contains(&pair.public_key()));
        nkey.nkey_seed_file = Some(write("bad.nk", "SUNOTASEED"));
        let error = Security::load(&nkey).unwrap_err();
        assert!(
            error.to_string().starts_with("replication.nkey_seed_file = "),
            "{error}"
        );
        let account = nkeys::KeyPair::new_account().seed().unwrap();
        nkey.nkey_seed_file = Some(write("account.nk", &account));
        assert!(
            Security::load(&nkey)
                .unwrap_err()
                .to_string()
                .contains("not a user nkey seed")
        );

        let mut creds = jetstream();
        creds.credentials_file = Some(write("bad.creds", "no jwt here"));
        let error = Security::load(&creds).unwrap_err();
        assert!(
            matches!(
                &error,
                ReplicationError::Secret {
                    field: "credentials_file",
                    ..
                }
            ),
            "{error}"
        );

        let mut tls = jetstream();
        tls.tls_ca_file = Some(dir.path().join("absent-ca.pem"));
        let error = Security::load(&tls).unwrap_err();
        assert!(
            error.to_string().contains("absent-ca.pem: cannot open it"),
            "{error}"
        );

        let mut big = jetstream();
        big.token_file = Some(write("big", &"x".repeat(SECRET_FILE_BYTES_MAX as usize + 1)));
        assert!(
            Security::load(&big)
                .unwrap_err()
                .to_string()
                .contains("larger than")
        );
    }

    #[test]
    fn an_unset_environment_variable_is_named() {
        let mut config = jetstream();
        config.token_env = Some("STEMEDB_TEST_TOKEN_THAT_IS_NEVER_SET".into());
        let error = Security::load(&config).unwrap_err();
        assert_eq!(
            error.to_string(),
            "replication.token_env = STEMEDB_TEST_TOKEN_THAT_IS_NEVER_SET: the environment variable is not set"
        );
    }
}
