//! Who is calling: [`Caller`] holds the verified user and service
//! [`Principal`]s and the actor chain of a delegated token.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{AuthError, PermissionCheck, Permissions, audit};

/// An audit event for a check of `P`; the scope text is built only when
/// audit events are collected (combinators allocate it).
fn decide<P: PermissionCheck>(caller: &Caller, allowed: bool, reason: &str) {
    if audit::enabled() {
        audit::decision(Some(caller), allowed, reason, &P::scope(), None);
    }
}

fn held_reason(held: bool, who: &'static str) -> &'static str {
    match (held, who) {
        (true, _) => "permission held",
        (false, "user") => "user lacks permission",
        (false, _) => "service lacks permission",
    }
}

/// Who a principal is: its issuer and its subject.
///
/// A `sub` is unique only within its issuer (RFC 7519 §4.1.2): two issuers
/// trusted by one slot may both have an `alice`. Store resource owners as a
/// `PrincipalId` and compare with it, never with a bare subject.
///
/// ```
/// use tower_mandate::PrincipalId;
///
/// let a = PrincipalId::new("https://id.a.example", "alice");
/// let b = PrincipalId::new("https://id.b.example", "alice");
/// assert_ne!(a, b);
/// assert_eq!(a.subject(), b.subject());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrincipalId {
    issuer: Arc<str>,
    subject: Arc<str>,
}

impl PrincipalId {
    /// The identity `subject` of `issuer`.
    pub fn new(issuer: impl Into<Arc<str>>, subject: impl Into<Arc<str>>) -> Self {
        PrincipalId {
            issuer: issuer.into(),
            subject: subject.into(),
        }
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The subject, unique within its issuer.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    fn is(&self, issuer: &str, subject: &str) -> bool {
        *self.issuer == *issuer && *self.subject == *subject
    }
}

/// One verified token's identity: subject, issuer, permissions and claims.
///
/// Cheap to clone. `Debug` never prints the token.
#[derive(Clone)]
pub struct Principal(Arc<Inner>);

struct Inner {
    subject: String,
    issuer: Arc<str>,
    permissions: Permissions,
    /// The roles read through the issuer's permission mapping.
    roles: Vec<Box<str>>,
    /// The verified payload, as JSON text; parsed only when asked for.
    payload: String,
    claims: OnceLock<Map<String, Value>>,
    token: Box<str>,
    expires_at: u64,
    /// The last second at which the verifier still accepts the token:
    /// `exp` plus the issuer's leeway.
    accepted_until: u64,
    not_before: Option<u64>,
    actors: Vec<Actor>,
    key_id: u64,
}

pub(crate) struct PrincipalParts {
    pub(crate) subject: String,
    pub(crate) issuer: Arc<str>,
    pub(crate) permissions: Permissions,
    pub(crate) roles: Vec<Box<str>>,
    pub(crate) payload: String,
    pub(crate) token: Box<str>,
    pub(crate) expires_at: u64,
    pub(crate) accepted_until: u64,
    pub(crate) not_before: Option<u64>,
    pub(crate) actors: Vec<Actor>,
    pub(crate) key_id: u64,
}

impl Principal {
    pub(crate) fn from_parts(p: PrincipalParts) -> Self {
        Principal(Arc::new(Inner {
            subject: p.subject,
            issuer: p.issuer,
            permissions: p.permissions,
            roles: p.roles,
            payload: p.payload,
            claims: OnceLock::new(),
            token: p.token,
            expires_at: p.expires_at,
            accepted_until: p.accepted_until,
            not_before: p.not_before,
            actors: p.actors,
            key_id: p.key_id,
        }))
    }

    /// The `sub` claim.
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// The `iss` claim (one of the trusted issuers).
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    /// Who this is: issuer and subject together, the only identity to
    /// compare (a `sub` is unique only within its issuer).
    pub fn id(&self) -> PrincipalId {
        PrincipalId::new(self.0.issuer.clone(), self.0.subject.as_str())
    }

    /// Whether this principal is `id` (same issuer, same subject).
    pub fn is(&self, id: &PrincipalId) -> bool {
        id.is(&self.0.issuer, &self.0.subject)
    }

    /// The permissions granted by the token's claims and roles.
    pub fn permissions(&self) -> &Permissions {
        &self.0.permissions
    }

    /// The roles the token carries, read from the role claims of its
    /// issuer's [`PermissionMapping`](crate::PermissionMapping) (default:
    /// `roles`), whether or not the mapping grants them permissions.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.0.roles.iter().map(|r| &**r)
    }

    /// Whether this principal satisfies `P`.
    #[inline]
    pub fn holds<P: PermissionCheck>(&self) -> bool {
        P::holds(&self.0.permissions)
    }

    /// The verified claims, deserialised into the application's own type.
    ///
    /// # Errors
    ///
    /// When the claims do not fit `T`.
    ///
    /// ```
    /// # use tower_mandate::Principal;
    /// #[derive(serde::Deserialize)]
    /// struct MyClaims { tenant: String }
    /// # fn f(p: &Principal) -> Result<(), serde_json::Error> {
    /// let tenant = p.claims::<MyClaims>()?.tenant;
    /// # Ok(()) }
    /// ```
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0.payload)
    }

    /// One verified claim.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims_map().get(name)
    }

    /// All verified claims.
    pub fn claims_map(&self) -> &Map<String, Value> {
        self.0
            .claims
            .get_or_init(|| serde_json::from_str(&self.0.payload).unwrap_or_default())
    }

    /// The `jti` claim, when present.
    pub fn token_id(&self) -> Option<&str> {
        self.claim("jti").and_then(Value::as_str)
    }

    /// When the token expires (`exp`).
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0.expires_at)
    }

    pub(crate) fn exp(&self) -> u64 {
        self.0.expires_at
    }

    /// `exp` plus the issuer's leeway: until when the token is accepted.
    pub(crate) fn accepted_until(&self) -> u64 {
        self.0.accepted_until
    }

    pub(crate) fn nbf(&self) -> Option<u64> {
        self.0.not_before
    }

    pub(crate) fn key_id(&self) -> u64 {
        self.0.key_id
    }

    /// The actor chain of a delegated token (RFC 8693 §4.1): the current
    /// actor first, then earlier ones. Empty for a token without `act`.
    pub fn actors(&self) -> &[Actor] {
        &self.0.actors
    }

    /// The raw token, as received.
    ///
    /// # Security
    ///
    /// This is a bearer credential: never log it, and send it only to the
    /// destinations it was meant for.
    pub fn token(&self) -> &str {
        &self.0.token
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("subject", &self.0.subject)
            .field("issuer", &self.0.issuer)
            .field("permissions", &self.0.permissions)
            .field("actors", &self.0.actors)
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// One entry of a delegation chain (an `act` claim, RFC 8693 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    subject: String,
    issuer: Option<String>,
}

impl Actor {
    pub(crate) fn new(subject: String, issuer: Option<String>) -> Self {
        Actor { subject, issuer }
    }

    /// The actor's `sub`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The actor's `iss`, when the `act` claim names one.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The actor's identity: its `iss`, or the issuer of the token that
    /// names it (`token_issuer`) when the `act` claim gives none.
    pub fn id(&self, token_issuer: &str) -> PrincipalId {
        PrincipalId::new(
            self.issuer.as_deref().unwrap_or(token_issuer),
            self.subject.as_str(),
        )
    }
}

/// Everyone verified on a request: the end user, the calling service, and
/// the actor chain.
///
/// The layer puts a `Caller` into the extensions of every request it lets
/// through — an [anonymous](Caller::is_anonymous) one when every slot is
/// optional and empty. Guards use [`Caller::require`]: **every** verified
/// principal must hold the permission, so a powerful user token cannot lift
/// a weak service token and the other way round.
#[derive(Clone, Default)]
pub struct Caller {
    user: Option<Principal>,
    service: Option<Principal>,
    /// How the layer that made this caller renders refusals.
    pub(crate) renderer: Option<crate::server::Renderer>,
}

impl Caller {
    /// A caller from its principals (for tests and custom layers).
    pub fn new(user: Option<Principal>, service: Option<Principal>) -> Self {
        Caller {
            user,
            service,
            renderer: None,
        }
    }

    /// The end user, when a user token verified.
    pub fn user(&self) -> Option<&Principal> {
        self.user.as_ref()
    }

    /// The calling service, when a service token verified.
    pub fn service(&self) -> Option<&Principal> {
        self.service.as_ref()
    }

    /// The verified principals: the user first, then the service.
    pub fn principals(&self) -> impl Iterator<Item = &Principal> {
        self.user.iter().chain(self.service.iter())
    }

    /// Whether no principal verified.
    pub fn is_anonymous(&self) -> bool {
        self.user.is_none() && self.service.is_none()
    }

    /// The actor chain of the user's token (or of the service's token when
    /// there is no user): current actor first.
    ///
    /// RFC 8693 §4.1: only the token's top-level claims and the current
    /// actor count for access control — permissions are read from the
    /// top-level claims, never from `act` — and earlier actors are for audit.
    /// Chains deeper than [`Issuer::with_max_actor_depth`](crate::Issuer::with_max_actor_depth)
    /// are refused, and [`Issuer::require_may_act`](crate::Issuer::require_may_act)
    /// checks the current actor against `may_act`.
    pub fn actors(&self) -> &[Actor] {
        self.delegated().map_or(&[], |p| p.actors())
    }

    /// The principal whose token carries the actor chain: the user, else
    /// the service.
    fn delegated(&self) -> Option<&Principal> {
        self.user.as_ref().or(self.service.as_ref())
    }

    /// The current actor of a delegated token (RFC 8693 §4.1): the only
    /// entry of the chain that counts for access control. Earlier actors
    /// ([`Caller::actors`]) are for audit.
    pub fn actor(&self) -> Option<&Actor> {
        self.actors().first()
    }

    /// The current actor's identity: its `iss` when the `act` claim names
    /// one, else the issuer of the delegated token.
    pub fn actor_id(&self) -> Option<PrincipalId> {
        let token = self.delegated()?;
        Some(token.actors().first()?.id(token.issuer()))
    }

    /// Whether every verified principal holds `P` (and there is at least one).
    #[inline]
    pub fn holds<P: PermissionCheck>(&self) -> bool {
        !self.is_anonymous() && self.principals().all(Principal::holds::<P>)
    }

    /// Require that every verified principal holds `P`.
    ///
    /// # Errors
    ///
    /// 401 when no principal verified; 403 `insufficient_scope` otherwise.
    ///
    /// Each call is one audit decision (see [`audit`](crate::audit)).
    #[inline]
    pub fn require<P: PermissionCheck>(&self) -> Result<(), AuthError> {
        if self.is_anonymous() {
            decide::<P>(self, false, "no credentials");
            return Err(AuthError::missing_credentials());
        }
        if self.principals().all(Principal::holds::<P>) {
            decide::<P>(self, true, "permission held");
            Ok(())
        } else {
            decide::<P>(self, false, "permission missing");
            Err(AuthError::insufficient_scope(P::scope()))
        }
    }

    /// Require `P` of the user; the service, if present, has already verified.
    ///
    /// # Errors
    ///
    /// 401 without a user; 403 when the user lacks `P`.
    ///
    /// Each call is one audit decision, like [`Caller::require`].
    pub fn require_user<P: PermissionCheck>(&self) -> Result<&Principal, AuthError> {
        let Some(user) = self.user.as_ref() else {
            decide::<P>(self, false, "no user");
            return Err(AuthError::missing_credentials());
        };
        let held = user.holds::<P>();
        decide::<P>(self, held, held_reason(held, "user"));
        if held {
            Ok(user)
        } else {
            Err(AuthError::insufficient_scope(P::scope()))
        }
    }

    /// Require `P` of the service; the user, if present, has already verified.
    ///
    /// # Errors
    ///
    /// 401 without a service; 403 when the service lacks `P`.
    pub fn require_service<P: PermissionCheck>(&self) -> Result<&Principal, AuthError> {
        let Some(service) = self.service.as_ref() else {
            decide::<P>(self, false, "no service");
            return Err(AuthError::missing_credentials());
        };
        let held = service.holds::<P>();
        decide::<P>(self, held, held_reason(held, "service"));
        if held {
            Ok(service)
        } else {
            Err(AuthError::insufficient_scope(P::scope()))
        }
    }

    /// Ownership rule: every principal holds `P`, and either the caller's
    /// user is `owner` (same issuer and subject), or every principal also
    /// holds `P::ANY` (e.g. `images:read:any`). Call it before any mutation.
    ///
    /// # Errors
    ///
    /// 401 when no principal verified; 403 naming `P` or `P::ANY`.
    ///
    /// ```
    /// # use tower_mandate::{Caller, PrincipalId, permission};
    /// permission! { pub ImagesDelete = "images:delete"; }
    /// # fn f(caller: &Caller) -> Result<(), tower_mandate::AuthError> {
    /// // Stored when the image was created: `caller.user().unwrap().id()`.
    /// let owner = PrincipalId::new("https://id.example", "alice");
    /// caller.require_owner::<ImagesDelete>(&owner)?;
    /// // ... now delete
    /// # Ok(()) }
    /// ```
    pub fn require_owner<P: crate::Permission>(
        &self,
        owner: &PrincipalId,
    ) -> Result<(), AuthError> {
        self.owner_check::<P>(None, owner)
    }

    /// [`Caller::require_owner`] for the resource `resource`, whose id goes
    /// into the audit event.
    ///
    /// # Errors
    ///
    /// As [`Caller::require_owner`].
    pub fn require_owner_of<P: crate::Permission>(
        &self,
        resource: &str,
        owner: &PrincipalId,
    ) -> Result<(), AuthError> {
        self.owner_check::<P>(Some(resource), owner)
    }

    fn owner_check<P: crate::Permission>(
        &self,
        resource: Option<&str>,
        owner: &PrincipalId,
    ) -> Result<(), AuthError> {
        let deny = |reason, error| {
            audit::decision(Some(self), false, reason, P::NAME, resource);
            Err(error)
        };
        if self.is_anonymous() {
            return deny("no credentials", AuthError::missing_credentials());
        }
        if !self.principals().all(Principal::holds::<P>) {
            return deny("permission missing", AuthError::insufficient_scope(P::NAME));
        }
        if self.user.as_ref().is_some_and(|u| u.is(owner)) {
            audit::decision(Some(self), true, "owner", P::NAME, resource);
            return Ok(());
        }
        if self.principals().all(|p| p.permissions().contains(P::ANY)) {
            audit::decision(Some(self), true, "any permission held", P::ANY, resource);
            Ok(())
        } else {
            deny("not owner", AuthError::insufficient_scope(P::ANY))
        }
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("user", &self.user)
            .field("service", &self.service)
            .finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::permission;

    permission! {
        Read = "images:read";
        Delete = "images:delete";
    }

    pub(crate) fn principal(sub: &str, perms: &[&str]) -> Principal {
        principal_of("https://issuer", sub, perms)
    }

    pub(crate) fn principal_of(iss: &str, sub: &str, perms: &[&str]) -> Principal {
        Principal::from_parts(PrincipalParts {
            subject: sub.into(),
            issuer: iss.into(),
            permissions: perms.iter().copied().collect(),
            roles: vec![],
            payload: "{}".into(),
            token: "header.payload.signature-secret".into(),
            expires_at: 4_000_000_000,
            accepted_until: 4_000_000_060,
            not_before: None,
            actors: vec![],
            key_id: 0,
        })
    }

    #[test]
    fn intersection_and_ownership() {
        struct Case {
            name: &'static str,
            caller: Caller,
            read: bool,
            alice_owned_read: bool,
            alice_owned_delete: bool,
        }
        let alice = principal("alice", &["images:read", "images:delete"]);
        let bob = principal("bob", &["images:read", "images:delete"]);
        let archiver = principal("archiver", &["images:read", "images:read:any"]);
        let weak_service = principal("svc", &[]);
        let cases = [
            Case {
                name: "owner alone",
                caller: Caller::new(Some(alice.clone()), None),
                read: true,
                alice_owned_read: true,
                alice_owned_delete: true,
            },
            Case {
                name: "other user",
                caller: Caller::new(Some(bob), None),
                read: true,
                alice_owned_read: false,
                alice_owned_delete: false,
            },
            Case {
                name: "service with :any, no user",
                caller: Caller::new(None, Some(archiver.clone())),
                read: true,
                alice_owned_read: true,
                alice_owned_delete: false,
            },
            Case {
                name: "owner beside a weak service",
                caller: Caller::new(Some(alice.clone()), Some(weak_service)),
                read: false,
                alice_owned_read: false,
                alice_owned_delete: false,
            },
            Case {
                name: "owner through archiver",
                caller: Caller::new(Some(alice), Some(archiver)),
                read: true,
                alice_owned_read: true,
                alice_owned_delete: false,
            },
            Case {
                name: "anonymous",
                caller: Caller::default(),
                read: false,
                alice_owned_read: false,
                alice_owned_delete: false,
            },
        ];
        let owner = PrincipalId::new("https://issuer", "alice");
        for c in cases {
            assert_eq!(c.caller.holds::<Read>(), c.read, "{}", c.name);
            assert_eq!(c.caller.require::<Read>().is_ok(), c.read, "{}", c.name);
            assert_eq!(
                c.caller.require_owner::<Read>(&owner).is_ok(),
                c.alice_owned_read,
                "{}",
                c.name
            );
            assert_eq!(
                c.caller.require_owner::<Delete>(&owner).is_ok(),
                c.alice_owned_delete,
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn ownership_is_per_issuer() {
        // Another issuer's "alice" holding every plain permission is not
        // the owner of alice@issuer's resource.
        let owner = PrincipalId::new("https://issuer", "alice");
        let impostor = Caller::new(
            Some(principal_of(
                "https://other-issuer",
                "alice",
                &["images:read", "images:delete"],
            )),
            None,
        );
        assert!(impostor.require_owner::<Read>(&owner).is_err());
        assert!(impostor.require_owner::<Delete>(&owner).is_err());
        let real = Caller::new(Some(principal("alice", &["images:read"])), None);
        assert!(real.require_owner::<Read>(&owner).is_ok());
        assert!(real.user().unwrap().is(&owner));
        assert_eq!(real.user().unwrap().id(), owner);
    }

    #[test]
    fn debug_hides_token() {
        let text = format!("{:?}", Caller::new(Some(principal("a", &[])), None));
        assert!(!text.contains("signature-secret"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn typed_claims() {
        #[derive(serde::Deserialize)]
        struct Mine {
            tenant: String,
        }
        let p = Principal::from_parts(PrincipalParts {
            subject: "a".into(),
            issuer: "i".into(),
            permissions: Permissions::default(),
            roles: vec![],
            payload: r#"{"tenant":"t1","sub":"a"}"#.into(),
            token: "t".into(),
            expires_at: 1,
            accepted_until: 61,
            not_before: None,
            actors: vec![],
            key_id: 0,
        });
        assert_eq!(p.claims::<Mine>().unwrap().tenant, "t1");
        assert_eq!(p.claim("sub"), Some(&Value::String("a".into())));
        assert!(p.claims::<Vec<String>>().is_err());
    }
}
