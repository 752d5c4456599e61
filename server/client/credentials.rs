//! Where the client finds its server and token: `SLIPWAY_URL` and `SLIPWAY_TOKEN` when both are
//! set (CI), else the file `slipway login` wrote, `<config dir>/slipway/credentials.toml`, which
//! only its owner can read (0600, in a 0700 directory), written whole or not at all.

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ClientError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The server's address, without a trailing slash.
    pub url: String,
    pub token: String,
}

impl Credentials {
    /// Checked as typed by a person: an http(s) address with no query, and a Slipway token.
    pub fn new(url: &str, token: &str) -> Result<Self, ClientError> {
        let url = url.trim().trim_end_matches('/');
        let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
        if !scheme_ok || url.contains(['?', '#', ' ']) || url.chars().any(char::is_control) {
            return Err(ClientError::Usage(format!(
                "--url: use the address Slipway prints when it starts, e.g. https://slipway.example.com (got {url:?})"
            )));
        }
        let token = token.trim();
        if !token.starts_with("slw_") || token.chars().any(|c| c.is_control() || c == ' ') {
            return Err(ClientError::Usage(
                "--token: use an API token (it starts with slw_); make one on your profile page or with `slipway admin create-token`".into(),
            ));
        }
        Ok(Credentials {
            url: url.to_owned(),
            token: token.to_owned(),
        })
    }
}

/// The credentials file's path: the platform's config directory (`$XDG_CONFIG_HOME` or
/// `~/.config` on Linux).
pub fn path() -> Result<PathBuf, ClientError> {
    dirs::config_dir()
        .map(|dir| dir.join("slipway").join("credentials.toml"))
        .ok_or_else(|| ClientError::Local("no config directory: set HOME".into()))
}

/// The credentials to use now.
pub fn load() -> Result<Credentials, ClientError> {
    if let (Ok(url), Ok(token)) = (std::env::var("SLIPWAY_URL"), std::env::var("SLIPWAY_TOKEN")) {
        return Credentials::new(&url, &token);
    }
    let path = path()?;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ClientError::NotSignedIn);
        }
        Err(e) => return Err(local(&path, e)),
    };
    toml::from_str(&text).map_err(|e| {
        ClientError::Local(format!(
            "{} is not a credentials file ({e}); run `slipway login` again",
            path.display()
        ))
    })
}

pub fn save(credentials: &Credentials) -> Result<PathBuf, ClientError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let path = path()?;
    let dir = path.parent().expect("the path has a directory");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| local(dir, e))?;
    let text = toml::to_string(credentials).expect("credentials serialise");
    // Written beside the file and renamed over it: a crash leaves the old file or the new one.
    let partial = dir.join(".credentials.toml.partial");
    let _ = std::fs::remove_file(&partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| local(&partial, e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| local(&partial, e))?;
    // A file that existed before with wider permissions is replaced, not reused.
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| local(&partial, e))?;
    std::fs::rename(&partial, &path).map_err(|e| local(&path, e))?;
    Ok(path)
}

/// Removes the saved credentials; whether there were any.
pub fn forget() -> Result<bool, ClientError> {
    let path = path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(local(&path, e)),
    }
}

fn local(path: &std::path::Path, e: std::io::Error) -> ClientError {
    ClientError::Local(format!("{}: {e}", path.display()))
}
