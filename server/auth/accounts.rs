//! The account use cases: password sign-in, first-run setup, invitations, single-sign-on users,
//! role changes and API tokens. Plain functions over typed inputs; each writes its audit event
//! in the same transaction as its change.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;

use super::oidc::SsoIdentity;
use super::tokens::ApiToken;
use super::{Principal, Role, RoleSet, User, UserId, links, password, ratelimit, tokens, users};
use crate::audit::{self, Actor};
use crate::validation::{FieldErrors, check_email, check_name};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid input")]
    Invalid(FieldErrors),
    #[error("too many failed sign-ins")]
    RateLimited,
    #[error("wrong e-mail or password")]
    BadCredentials,
    #[error("this link is not valid any more")]
    LinkUnusable,
    #[error("the account has no Slipway role")]
    NoRoles,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<FieldErrors> for AccountError {
    fn from(e: FieldErrors) -> Self {
        AccountError::Invalid(e)
    }
}

fn subject(user: UserId) -> String {
    format!("user:{user}")
}

/// Hashing is slow by design: keep it off the async workers.
async fn hash_password(password: &str) -> String {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .expect("hashing does not panic")
}

async fn verify_password(password: &str, stored: &str) -> bool {
    let (password, stored) = (password.to_owned(), stored.to_owned());
    tokio::task::spawn_blocking(move || password::verify(&password, &stored))
        .await
        .unwrap_or(false)
}

/// Checks e-mail and password, with rate limiting per account and per address. The same answer
/// (and the same work) for an unknown e-mail as for a wrong password.
pub async fn password_login(
    db: &PgPool,
    email: &str,
    password: &str,
    ip: Option<IpAddr>,
) -> Result<User, AccountError> {
    let email = email.trim();
    if let ratelimit::Attempt::LockedOut { first } = ratelimit::begin_attempt(db, email, ip).await?
    {
        // Once per lockout: refused attempts do not each grow the append-only audit log.
        if first {
            audit::record(
                db,
                &Actor::anonymous(email),
                "auth.login_rate_limited",
                &format!("email:{email}"),
                json!({ "ip": ip }),
            )
            .await?;
        }
        return Err(AccountError::RateLimited);
    }
    let found = users::find_local_by_email(db, email).await?;
    let stored = found
        .as_ref()
        .and_then(|(_, hash)| hash.clone())
        .unwrap_or_else(|| password::dummy_hash().to_owned());
    let matches = verify_password(password, &stored).await;
    match found {
        Some((user, Some(_))) if matches => {
            ratelimit::clear(db, email).await?;
            audit::record(
                db,
                &Actor::user(user.id, &user.email),
                "auth.login",
                &subject(user.id),
                json!({ "method": "password", "ip": ip }),
            )
            .await?;
            Ok(user)
        }
        _ => {
            // Already counted by `begin_attempt`.
            audit::record(
                db,
                &Actor::anonymous(email),
                "auth.login_failed",
                &format!("email:{email}"),
                json!({ "method": "password", "ip": ip }),
            )
            .await?;
            Err(AccountError::BadCredentials)
        }
    }
}

/// A new local account as entered in a form (setup or invitation).
pub struct NewAccount<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub password: &'a str,
    pub password_confirmation: &'a str,
}

fn check_account(account: &NewAccount<'_>, with_email: bool) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::default();
    if with_email && let Err(m) = check_email(account.email.trim()) {
        errors.add("email", m);
    }
    if let Err(m) = check_name(account.name) {
        errors.add("name", m);
    }
    if let Err(m) = password::check_new(account.password, account.password_confirmation) {
        errors.add("password", m);
    }
    errors.into_result()
}

/// Uses the first-run setup link: creates the first admin. Only while there are no users.
pub async fn complete_setup(
    db: &PgPool,
    token: &str,
    account: NewAccount<'_>,
) -> Result<User, AccountError> {
    check_account(&account, true)?;
    let hash = hash_password(account.password).await;
    let mut tx = db.begin().await?;
    // One setup at a time: the first admin is created exactly once.
    sqlx::query("LOCK TABLE app_user IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    if users::count(&mut *tx).await? > 0 || !links::consume(&mut *tx, token).await? {
        return Err(AccountError::LinkUnusable);
    }
    let admin: RoleSet = Role::ALL.into_iter().collect();
    let id = users::create_local(
        &mut *tx,
        account.email.trim(),
        account.name.trim(),
        &admin,
        Some(&hash),
    )
    .await?;
    let actor = Actor::user(id, account.email.trim());
    audit::record(
        &mut *tx,
        &actor,
        "setup.completed",
        &subject(id),
        json!({ "roles": admin }),
    )
    .await?;
    tx.commit().await?;
    Ok(users::find(db, id)
        .await?
        .expect("the user was just created"))
}

/// Uses an invitation link: the invited user sets their name and password.
pub async fn accept_invite(
    db: &PgPool,
    token: &str,
    user: UserId,
    account: NewAccount<'_>,
) -> Result<User, AccountError> {
    check_account(&account, false)?;
    let hash = hash_password(account.password).await;
    let mut tx = db.begin().await?;
    if !links::consume(&mut *tx, token).await? {
        return Err(AccountError::LinkUnusable);
    }
    users::set_password(&mut *tx, user, account.name.trim(), &hash).await?;
    let found = users::find(&mut *tx, user)
        .await?
        .ok_or(AccountError::LinkUnusable)?;
    audit::record(
        &mut *tx,
        &Actor::user(user, &found.email),
        "user.password_set",
        &subject(user),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(found)
}

/// Creates a local user with roles, who sets a password through the returned one-time link
/// token: an admin's invitation, or `slipway admin create-user` (`by` is then the system).
pub async fn invite(
    db: &PgPool,
    by: &Actor,
    email: &str,
    name: &str,
    roles: &RoleSet,
) -> Result<(UserId, String), AccountError> {
    let email = email.trim();
    let mut errors = FieldErrors::default();
    if let Err(m) = check_email(email) {
        errors.add("email", m);
    }
    if let Err(m) = check_name(name) {
        errors.add("name", m);
    }
    if roles.is_empty() {
        errors.add("roles", "Choose at least one role.");
    }
    errors.into_result()?;
    let mut tx = db.begin().await?;
    let id = match users::create_local(&mut *tx, email, name.trim(), roles, None).await {
        Ok(id) => id,
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("app_user_local_email_key") => {
            let mut errors = FieldErrors::default();
            errors.add("email", "A user with this e-mail address already exists.");
            return Err(errors.into());
        }
        Err(e) => return Err(e.into()),
    };
    let token = links::new_set_password(&mut *tx, id).await?;
    audit::record(
        &mut *tx,
        by,
        "user.invited",
        &subject(id),
        json!({ "email": email, "roles": roles }),
    )
    .await?;
    tx.commit().await?;
    Ok((id, token))
}

/// Signs in a single-sign-on user: creates or updates them with the roles their groups grant
/// now (so a removed group takes effect at this sign-in), refusing users with no role.
pub async fn sso_login(db: &PgPool, identity: &SsoIdentity) -> Result<User, AccountError> {
    let mut tx = db.begin().await?;
    let (id, before) = users::upsert_sso(
        &mut *tx,
        &identity.issuer,
        &identity.subject,
        &identity.email,
        &identity.name,
        &identity.roles,
        &identity.groups,
    )
    .await?;
    let actor = Actor::user(id, &identity.email);
    if before != identity.roles {
        audit::record(
            &mut *tx,
            &actor,
            "user.roles_changed",
            &subject(id),
            json!({ "before": before, "after": identity.roles, "via": "sso_groups" }),
        )
        .await?;
    }
    if identity.roles.is_empty() {
        audit::record(
            &mut *tx,
            &actor,
            "auth.login_failed",
            &subject(id),
            json!({ "method": "oidc", "reason": "no role" }),
        )
        .await?;
        tx.commit().await?;
        return Err(AccountError::NoRoles);
    }
    audit::record(
        &mut *tx,
        &actor,
        "auth.login",
        &subject(id),
        json!({ "method": "oidc", "groups": identity.groups }),
    )
    .await?;
    tx.commit().await?;
    Ok(users::find(db, id)
        .await?
        .expect("the user was just written"))
}

/// An admin changes a local user's roles.
pub async fn change_roles(
    db: &PgPool,
    by: &Principal,
    user: UserId,
    roles: &RoleSet,
) -> Result<(), users::RoleChangeError> {
    let before = users::set_roles(db, user, roles).await?;
    if before != *roles {
        audit::record(
            db,
            &Actor::from(by),
            "user.roles_changed",
            &subject(user),
            json!({ "before": before, "after": roles }),
        )
        .await?;
    }
    Ok(())
}

/// How long a new token lives, as offered in the form: `7d`, `30d`, `90d`, `365d` or `never`.
fn token_expiry(choice: &str) -> Option<Option<DateTime<Utc>>> {
    let days = match choice {
        "7d" => 7,
        "30d" => 30,
        "90d" => 90,
        "365d" => 365,
        "never" => return Some(None),
        _ => return None,
    };
    Some(Some(Utc::now() + chrono::Duration::days(days)))
}

/// Creates an API token for the caller with a subset of their roles.
pub async fn create_token(
    db: &PgPool,
    owner: &Principal,
    name: &str,
    roles: &RoleSet,
    expires: &str,
) -> Result<(ApiToken, String), AccountError> {
    let mut errors = FieldErrors::default();
    let expires_at = token_expiry(expires);
    if expires_at.is_none() {
        errors.add(
            "expires",
            "Choose when the token expires: 7d, 30d, 90d, 365d or never.",
        );
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        errors.add(
            "name",
            "Give the token a name of 1–100 characters, e.g. \"CI pipeline\".",
        );
    }
    if roles.is_empty() {
        errors.add("roles", "Choose at least one role for the token.");
    } else if !roles.is_subset(&owner.user.roles) {
        errors.add("roles", "A token can only have roles you hold yourself.");
    }
    errors.into_result()?;
    let expires_at = expires_at.flatten();
    let mut tx = db.begin().await?;
    let (token, secret) = tokens::create(&mut *tx, owner.user.id, name, roles, expires_at).await?;
    audit::record(
        &mut *tx,
        &Actor::from(owner),
        "token.created",
        &format!("token:{}", token.id),
        json!({ "name": name, "roles": roles, "expires_at": expires_at }),
    )
    .await?;
    tx.commit().await?;
    Ok((token, secret))
}

pub async fn revoke_token(
    db: &PgPool,
    owner: &Principal,
    id: uuid::Uuid,
) -> Result<bool, AccountError> {
    match tokens::revoke(db, owner.user.id, id).await? {
        Some(name) => {
            audit::record(
                db,
                &Actor::from(owner),
                "token.revoked",
                &format!("token:{id}"),
                json!({ "name": name }),
            )
            .await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Signing out: ends the session the caller used (a token has none) and records it.
pub async fn sign_out(db: &PgPool, principal: &Principal) -> Result<(), AccountError> {
    if let super::AuthMethod::Session { token_hash } = &principal.method {
        super::session::end(db, token_hash).await?;
    }
    audit::record(
        db,
        &Actor::from(principal),
        "auth.logout",
        &format!("user:{}", principal.user.id),
        json!({}),
    )
    .await?;
    Ok(())
}

/// Signing out everywhere: ends all of the user's sessions and records how many.
pub async fn sign_out_everywhere(db: &PgPool, principal: &Principal) -> Result<(), AccountError> {
    let ended = super::session::end_all(db, principal.user.id).await?;
    audit::record(
        db,
        &Actor::from(principal),
        "auth.logout_everywhere",
        &format!("user:{}", principal.user.id),
        json!({ "sessions_ended": ended }),
    )
    .await?;
    Ok(())
}

/// Records a single sign-on the identity provider's answer did not complete (`reason`).
pub async fn sso_refused(
    db: &PgPool,
    reason: &str,
    ip: Option<IpAddr>,
) -> Result<(), AccountError> {
    audit::record(
        db,
        &Actor::anonymous("single sign-on"),
        "auth.login_failed",
        "auth:oidc",
        json!({ "method": "oidc", "reason": reason, "ip": ip }),
    )
    .await?;
    Ok(())
}
