//! Passwords: Argon2id hashes (PHC strings) and the rules a new password must meet.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

pub const MIN_LENGTH: usize = 12;
const MAX_LENGTH: usize = 1024;

/// Why a new password is not accepted, in words for the form.
pub fn check_new(password: &str, confirmation: &str) -> Result<(), &'static str> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err("Use at least 12 characters; a few unrelated words make a good password.");
    }
    if length > MAX_LENGTH {
        return Err("Use at most 1024 characters.");
    }
    if password != confirmation {
        return Err("The two passwords differ; type the same password twice.");
    }
    Ok(())
}

/// Hashes with Argon2id and a random salt. Run on a blocking thread: it is slow by design.
pub fn hash(password: &str) -> String {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the operating system's random source is available");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 with default parameters hashes any password")
        .to_string()
}

/// Whether `password` matches the stored hash. A malformed hash never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash that matches nothing, verified against when the account does not exist, so a wrong
/// e-mail takes as long as a wrong password and response times do not reveal accounts.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| hash("slipway-timing-equaliser-not-a-password"));
    &DUMMY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_the_right_password() {
        let stored = hash("correct horse battery staple");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse battery staple", &stored));
        assert!(!verify("correct horse battery stapler", &stored));
        assert!(!verify("anything", "not a hash"));
    }

    #[test]
    fn new_passwords_are_checked() {
        assert!(check_new("short", "short").is_err());
        assert!(check_new("long enough password", "long enough passwort").is_err());
        assert!(check_new("long enough password", "long enough password").is_ok());
    }
}
