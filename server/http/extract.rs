//! Extractors that put the caller and their permissions in front of every handler:
//! `Ctx` for pages (caller, if any, and the CSRF token), `Authenticated` for any signed-in
//! caller, and `Allowed<P>` that asks `auth::can` for permission `P`. Handlers never decide
//! authorization themselves.

use std::marker::PhantomData;
use std::net::IpAddr;

use axum::body::Body;
use axum::extract::{FromRequestParts, RawPathParams, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::auth::{Action, Principal, Subject, can};
use crate::http::auth::RequestAuth;
use crate::http::error::AppError;
use crate::http::views::Shell;
use crate::validation::{FieldErrors, TextKind, check_text, json_text_errors, text_kind};

/// `next` is left to the sign-in handlers: anything but a path of ours, control characters
/// included, falls back to `/` there (`account::safe_next`), and it is never stored otherwise.
const LEFT_TO_HANDLER: &[&str] = &["next"];

/// Refuses control characters before any extractor or handler sees them, for every route: in a
/// path or query parameter 400, in a JSON or form body 422 naming the field; which characters a
/// field may hold follows its kind (`validation::text_kind`).
pub async fn reject_control_characters(request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let mut errors = FieldErrors::default();
    // Decoded; an undecodable parameter is left to the route (its extractor answers).
    if let Ok(params) = RawPathParams::from_request_parts(&mut parts, &()).await {
        for (name, value) in &params {
            if let Err(message) = check_text(value, TextKind::SingleLine) {
                errors.add(name, message);
            }
        }
    }
    for (name, value) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
        if LEFT_TO_HANDLER.contains(&name.as_ref()) {
            continue;
        }
        for text in [&name, &value] {
            if let Err(message) = check_text(text, TextKind::SingleLine) {
                errors.add(&name.escape_default().to_string(), message);
                break;
            }
        }
    }
    if !errors.is_empty() {
        return AppError::BadParameter(errors.0).into_response();
    }

    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let json = essence == "application/json" || essence.ends_with("+json");
    let form = essence == "application/x-www-form-urlencoded";
    if !json && !form {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let Ok(bytes) = axum::body::to_bytes(body, crate::app::router::BODY_LIMIT_BYTES).await else {
        return AppError::PayloadTooLarge.into_response();
    };
    if json {
        // A body that is not JSON is the handler's to refuse, with its own words.
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            errors = json_text_errors(&value);
        }
    } else {
        for (name, value) in form_urlencoded::parse(&bytes) {
            if LEFT_TO_HANDLER.contains(&name.as_ref()) {
                continue;
            }
            let field: String = name.escape_default().collect();
            if let Err(message) = check_text(&name, TextKind::SingleLine)
                .and_then(|()| check_text(&value, text_kind(&name)))
            {
                errors.add(&field, message);
            }
        }
    }
    if !errors.is_empty() {
        return AppError::Validation(errors.0).into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The page context: who is signed in (if anyone) and the CSRF token for forms.
pub struct Ctx {
    pub principal: Option<Principal>,
    pub csrf_token: String,
    /// The browser's live session cookie, ended when it signs in again (rotation).
    pub session_cookie: Option<String>,
    pub unread_notifications: i64,
    pub flash: Option<crate::http::flash::Flash>,
}

impl Ctx {
    pub fn from_auth(auth: RequestAuth) -> Self {
        Ctx {
            principal: auth.principal,
            csrf_token: auth.csrf_token,
            session_cookie: auth.session_cookie,
            unread_notifications: auth.unread_notifications,
            flash: auth.flash,
        }
    }

    pub fn shell(&self, state: &AppState, active: &'static str, title: &str) -> Shell {
        Shell {
            unread_notifications: self.unread_notifications,
            flash: self.flash.map(|f| f.message()),
            ..state.shell(self.principal.as_ref(), &self.csrf_token, active, title)
        }
    }
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, AppError> {
        let auth = parts
            .extensions
            .get::<RequestAuth>()
            .cloned()
            .unwrap_or_default();
        Ok(Ctx::from_auth(auth))
    }
}

/// Any signed-in caller (browser session or API token).
pub struct Authenticated(pub Principal);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, AppError> {
        let auth = parts
            .extensions
            .get::<RequestAuth>()
            .cloned()
            .unwrap_or_default();
        if auth.invalid_token {
            return Err(AppError::InvalidToken);
        }
        auth.principal
            .map(Authenticated)
            .ok_or(AppError::Unauthorized)
    }
}

/// A permission checked before the handler runs: the action and the subject it applies to.
pub trait Permission {
    const ACTION: Action;
    /// What the action is done to; the portal as a whole unless the permission says otherwise.
    fn subject(_principal: &Principal) -> Subject {
        Subject::Portal
    }
}

/// The caller, once `auth::can` allowed permission `P`; otherwise 401 (not signed in) or 403.
pub struct Allowed<P: Permission>(pub Principal, pub PhantomData<P>);

impl<P: Permission> Allowed<P> {
    pub fn principal(&self) -> &Principal {
        &self.0
    }
}

impl<P: Permission + Send + Sync> FromRequestParts<AppState> for Allowed<P> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        authorize(&principal, P::ACTION, P::subject(&principal))?;
        Ok(Allowed(principal, PhantomData))
    }
}

/// Manage one's own account (tokens, sessions) from a browser.
pub struct ManageOwnAccount;
impl Permission for ManageOwnAccount {
    const ACTION: Action = Action::ManageAccount;
    fn subject(principal: &Principal) -> Subject {
        Subject::Account(principal.user.id)
    }
}

/// A submitted HTML form (`application/x-www-form-urlencoded`), with repeated fields kept
/// (checkbox groups such as `roles=developer&roles=admin`). Missing fields read as empty, so
/// validation, not deserialisation, says what is wrong, beside the field.
pub struct FormFields(Vec<(String, String)>);

impl FormFields {
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The fields whose names start with `prefix`: the rest of each name, and the value.
    pub fn starting_with<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.0
            .iter()
            .filter_map(move |(k, v)| Some((k.strip_prefix(prefix)?, v.as_str())))
    }
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for FormFields {
    type Rejection = AppError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, AppError> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|_| AppError::PayloadTooLarge)?;
        Ok(FormFields(
            form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

/// The client's address, for rate limiting and the audit log.
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip());
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        Ok(ClientIp(peer.map(|peer| {
            client_address(peer, forwarded, &state.config.trusted_proxies)
        })))
    }
}

/// Who is on the other end: `peer` itself unless it is a trusted proxy; then, reading
/// `X-Forwarded-For` from the right (each proxy appends the address it saw), the first address
/// that is not a trusted proxy. A header that does not parse is not believed at all: anyone can
/// write one, and only the hops our own proxies appended are known to be true.
fn client_address<'a>(
    peer: IpAddr,
    forwarded: impl Iterator<Item = &'a str>,
    trusted: &[ipnet::IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Option<Vec<IpAddr>> = forwarded
        .flat_map(|header| header.split(','))
        .map(|hop| hop.trim().parse().ok())
        .collect();
    let Some(hops) = hops else {
        return peer;
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = hop;
        if !is_trusted(&hop) {
            break;
        }
    }
    client
}

/// Refuses with 403 unless `auth::can` allows: for handlers whose subject is only known after
/// loading it (a revision and its author).
pub fn authorize(principal: &Principal, action: Action, subject: Subject) -> Result<(), AppError> {
    authorize_named(principal, action, subject, "")
}

/// As [`authorize`], with the subject's name (a platform's) for the reason given with the 403.
pub fn authorize_named(
    principal: &Principal,
    action: Action,
    subject: Subject,
    name: &str,
) -> Result<(), AppError> {
    if can(principal, action, subject) {
        Ok(())
    } else {
        Err(AppError::ForbiddenBecause(crate::auth::policy::refusal(
            principal, action, subject, name,
        )))
    }
}

/// The path segment `name` of the matched route; 404 when absent.
async fn path_param(parts: &mut Parts, state: &AppState, name: &str) -> Result<String, AppError> {
    let axum::extract::Path(mut params) = axum::extract::Path::<
        std::collections::HashMap<String, String>,
    >::from_request_parts(parts, state)
    .await
    .map_err(|_| AppError::NotFound)?;
    params.remove(name).ok_or(AppError::NotFound)
}

/// A permission on the platform named by the `{slug}` path segment.
pub trait PlatformPermission {
    const ACTION: Action;
}

/// Declares marker types of permissions, each `Name: Trait = Action`: the extractors
/// `Allowed<Name>` (a [`Permission`] on the portal) and `OnPlatform<Name>` (a
/// [`PlatformPermission`] on the `{slug}` platform) ask `can` for that action.
macro_rules! permissions {
    ($($(#[$doc:meta])* $name:ident: $kind:ident = $action:ident;)*) => {
        $(
            $(#[$doc])*
            pub struct $name;
            impl $kind for $name {
                const ACTION: Action = Action::$action;
            }
        )*
    };
}

permissions! {
    /// See the portal's pages.
    UsePortal: Permission = UsePortal;
    /// Users and their roles.
    ManageUsers: Permission = ManageUsers;
    /// The audit log.
    ViewAudit: Permission = ViewAudit;
    /// Start a platform.
    CreatePlatform: Permission = CreatePlatform;
    /// The job queue.
    ViewJobs: Permission = ViewJobs;
    /// Retry and cancel jobs.
    ControlJobs: Permission = ControlJobs;
    /// The account pools.
    ViewAccountPool: Permission = ViewAccountPool;
    /// The Backstage catalog export.
    ViewCatalog: Permission = ViewCatalog;
    /// The approvals dashboard.
    ViewApprovals: Permission = ViewApprovals;
    /// The cloud connection page.
    ManageCloud: Permission = ManageCloud;
    /// Correct the Kubernetes version calendar.
    CorrectVersionCalendar: Permission = CorrectVersionCalendar;
    /// See a platform and its approved blueprint.
    PlatformViewer: PlatformPermission = ViewPlatform;
    /// See a platform's planning: scope, drafts, reviews, backlog.
    PlatformPlanner: PlatformPermission = ViewPlanning;
    /// Change a platform.
    PlatformEditor: PlatformPermission = EditPlatform;
    /// Request environments on the platform of `{slug}`.
    PlatformRequester: PlatformPermission = RequestEnvironment;
    /// Start the DevOps environment of the platform of `{slug}`.
    DevopsTrigger: PlatformPermission = TriggerDevops;
    /// Roll blueprint revisions out to the environments of the platform of `{slug}`.
    PlatformRollout: PlatformPermission = RollOutBlueprint;
}

/// The caller and the platform of the `{slug}` path segment, once `can` allowed `P` on it.
/// An unknown slug is 404.
pub struct OnPlatform<P> {
    pub principal: Principal,
    pub access: crate::define::platforms::PlatformAccess,
    _permission: PhantomData<P>,
}

impl<P> OnPlatform<P> {
    pub fn platform(&self) -> &crate::define::platforms::Platform {
        &self.access.platform
    }

    pub fn subject(&self) -> Subject {
        Subject::Platform {
            member: self.access.is_member,
        }
    }

    /// Whether the caller may also perform `action` here (to show or hide controls).
    pub fn can(&self, action: Action) -> bool {
        can(&self.principal, action, self.subject())
    }

    /// One of the platform's blueprint revisions, as the policy sees it.
    pub fn revision_subject(&self, revision: &crate::define::revisions::Revision) -> Subject {
        Subject::Revision {
            member: self.access.is_member,
            author: crate::define::revisions::author_of(revision),
        }
    }

    /// 403, saying why, unless the caller may perform `action` on `subject` of this platform
    /// (the platform itself, or one of its revisions).
    pub fn authorize(&self, action: Action, subject: Subject) -> Result<(), AppError> {
        authorize_named(&self.principal, action, subject, &self.platform().name)
    }
}

impl<P: PlatformPermission + Send + Sync> FromRequestParts<AppState> for OnPlatform<P> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        let slug = path_param(parts, state, "slug").await?;
        let access = crate::define::platforms::find(&state.pool, &slug, principal.user.id)
            .await?
            .ok_or(AppError::NotFound)?;
        let on = OnPlatform {
            principal,
            access,
            _permission: PhantomData,
        };
        on.authorize(P::ACTION, on.subject())?;
        Ok(on)
    }
}

/// The caller and the environment of the `{id}` path segment, once they may see it. An unknown
/// id, or one the caller may not see, is 404: its existence is not given away.
pub struct OnEnvironment {
    pub principal: Principal,
    pub environment: crate::environments::queries::Detail,
    /// Whether the caller is a member of the environment's platform.
    pub is_member: bool,
    /// Whether the caller is in one of the teams it was built for.
    pub in_team: bool,
}

impl OnEnvironment {
    /// The environment `id` as `principal` sees it, if it exists.
    pub async fn load(
        state: &AppState,
        principal: Principal,
        id: crate::environments::EnvironmentId,
    ) -> Result<Option<Self>, AppError> {
        let seen =
            crate::environments::queries::get_seen_by(&state.pool, id, principal.user.id).await?;
        Ok(seen.map(|seen| OnEnvironment {
            principal,
            environment: seen.detail,
            is_member: seen.is_member,
            in_team: seen.in_team,
        }))
    }

    pub fn id(&self) -> crate::environments::EnvironmentId {
        crate::environments::EnvironmentId(self.environment.summary.id)
    }

    pub fn subject(&self) -> Subject {
        Subject::Environment {
            requester: crate::auth::UserId(self.environment.summary.requested_by),
            member: self.is_member,
            in_team: self.in_team,
        }
    }

    /// Whether the caller may also perform `action` on it (to show or hide controls).
    pub fn can(&self, action: Action) -> bool {
        can(&self.principal, action, self.subject())
    }

    /// 403, saying why, unless the caller may perform `action` on it.
    pub fn authorize(&self, action: Action) -> Result<(), AppError> {
        let platform = &self.environment.summary.platform_name;
        authorize_named(&self.principal, action, self.subject(), platform)
    }
}

impl FromRequestParts<AppState> for OnEnvironment {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        let id = path_param(parts, state, "id")
            .await?
            .parse()
            .map_err(|_| AppError::NotFound)?;
        let on = OnEnvironment::load(state, principal, id)
            .await?
            .ok_or(AppError::NotFound)?;
        if !on.can(Action::ViewEnvironment) {
            return Err(AppError::NotFound);
        }
        Ok(on)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(peer: &str, forwarded: &[&str], trusted: &[&str]) -> String {
        let trusted: Vec<ipnet::IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        client_address(peer.parse().unwrap(), forwarded.iter().copied(), &trusted).to_string()
    }

    #[test]
    fn the_forwarded_address_is_believed_only_from_a_trusted_proxy() {
        // No trusted proxies (the default), or a peer that is not one: the peer, whatever it says.
        assert_eq!(
            address("203.0.113.9", &["198.51.100.1"], &[]),
            "203.0.113.9"
        );
        assert_eq!(
            address("203.0.113.9", &["198.51.100.1"], &["10.0.0.0/8"]),
            "203.0.113.9"
        );
        // Through our load balancer: the address it saw.
        assert_eq!(
            address("10.0.0.5", &["198.51.100.1"], &["10.0.0.0/8"]),
            "198.51.100.1"
        );
        // A client that forges a hop before ours is not believed about it.
        assert_eq!(
            address("10.0.0.5", &["1.2.3.4, 198.51.100.1"], &["10.0.0.0/8"]),
            "198.51.100.1"
        );
        // Two proxies of ours, in two headers.
        assert_eq!(
            address("10.0.0.5", &["198.51.100.1", "10.0.0.9"], &["10.0.0.0/8"]),
            "198.51.100.1"
        );
        // Nothing forwarded, or a header that does not parse: the proxy's own address.
        assert_eq!(address("10.0.0.5", &[], &["10.0.0.0/8"]), "10.0.0.5");
        assert_eq!(
            address("10.0.0.5", &["unknown, 198.51.100.1"], &["10.0.0.0/8"]),
            "10.0.0.5"
        );
    }
}
