//! Who is calling: [`Caller`] holds the verified user and service
//! [`Principal`]s and the actor chain of a delegated token; the
//! [current](Caller::current) caller is a task-local.

mod confirmation;
mod current;
mod principal;
mod transaction;

use std::fmt;
use std::sync::Arc;

pub use confirmation::Confirmation;
pub(crate) use confirmation::UNSUPPORTED_BINDING;
pub use current::Scoped;
pub(crate) use principal::PrincipalParts;
pub use principal::{Actor, Principal, PrincipalId};
pub use transaction::Transaction;

use crate::{AuthError, audit, permission::PermissionCheck};

/// An audit event for a check of `P`; the scope text is built only when
/// audit events are collected (combinators allocate it).
fn decide<P: PermissionCheck>(caller: &Caller, allowed: bool, reason: &str) {
    crate::metrics::guard(P::scope, allowed);
    if audit::enabled() {
        caller.audit(allowed, reason, &P::scope(), None);
    }
}

fn held_reason(held: bool, who: &'static str) -> &'static str {
    match (held, who) {
        (true, _) => "permission held",
        (false, "user") => "user lacks permission",
        (false, _) => "service lacks permission",
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
    /// The request's Transaction Token, as a principal whose permissions
    /// are its `scope`.
    transaction: Option<Principal>,
    /// For the audit event at the edge: the transaction this request
    /// started.
    started_txn: Option<Box<str>>,
    /// The request this caller made, for audit events (set by the layer
    /// while audit events are collected).
    origin: Option<Arc<audit::Origin>>,
    /// The request's id (`X-Request-Id`), when it carried a usable one.
    request_id: Option<Arc<str>>,
}

/// The caller of a request that skipped authentication: nobody.
#[cfg(any(feature = "axum", feature = "tonic"))]
pub(crate) static NOBODY: Caller = Caller {
    user: None,
    service: None,
    transaction: None,
    started_txn: None,
    origin: None,
    request_id: None,
};

impl Caller {
    /// A caller from its principals (for tests and custom layers).
    pub fn new(user: Option<Principal>, service: Option<Principal>) -> Self {
        Caller {
            user,
            service,
            transaction: None,
            started_txn: None,
            origin: None,
            request_id: None,
        }
    }

    /// This caller with the request's Transaction Token (verified by the
    /// layer's [`TransactionSlot`](crate::transaction::TransactionSlot)).
    pub(crate) fn with_transaction(mut self, transaction: Option<Principal>) -> Self {
        self.transaction = transaction;
        self
    }

    /// The request's Transaction Token, when the layer has a transaction
    /// slot and it verified one: `txn`, `sub`, `scope`, `tctx`, `rctx`.
    pub fn transaction(&self) -> Option<Transaction<'_>> {
        self.transaction.as_ref().map(Transaction)
    }

    /// The same caller with other principals (the application's
    /// enrichment), keeping what the layer knows of the request.
    pub(crate) fn with_principals(
        self,
        user: Option<Principal>,
        service: Option<Principal>,
    ) -> Self {
        Caller {
            user,
            service,
            ..self
        }
    }

    /// The RFC 7638 thumbprint of the DPoP key this request proved
    /// possession of (RFC 9449), when a principal's token is DPoP-bound.
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.principals()
            .find_map(|p| p.confirmation().and_then(Confirmation::dpop_jkt))
    }

    /// The SHA-256 thumbprint of the client certificate a principal's token
    /// is bound to (RFC 8705), which the request came with.
    pub fn certificate_thumbprint(&self) -> Option<&str> {
        self.principals().find_map(|p| {
            p.confirmation()
                .and_then(Confirmation::certificate_thumbprint)
        })
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
        self.user
            .iter()
            .chain(self.service.iter())
            .chain(self.transaction.iter())
    }

    /// Whether no principal verified.
    pub fn is_anonymous(&self) -> bool {
        self.user.is_none() && self.service.is_none() && self.transaction.is_none()
    }

    /// Whom the request is for: the user, else the transaction's subject
    /// (ownership checks compare with it).
    pub(crate) fn on_behalf_of(&self) -> Option<&Principal> {
        self.user.as_ref().or(self.transaction.as_ref())
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
        // A transaction's purpose bounds this guard too.
        let held = user.holds::<P>() && self.transaction.as_ref().is_none_or(Principal::holds::<P>);
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
        // A transaction's purpose bounds this guard too.
        let held =
            service.holds::<P>() && self.transaction.as_ref().is_none_or(Principal::holds::<P>);
        decide::<P>(self, held, held_reason(held, "service"));
        if held {
            Ok(service)
        } else {
            Err(AuthError::insufficient_scope(P::scope()))
        }
    }
}

impl Caller {
    /// This caller, in the request `origin` (for audit events).
    pub(crate) fn with_origin(mut self, origin: Option<Arc<audit::Origin>>) -> Self {
        self.origin = origin;
        self
    }

    /// This caller, in the request identified by `id` (see
    /// [`Caller::request_id`]); an id that is not [usable](crate::audit::request_id)
    /// is ignored.
    pub fn with_request_id(mut self, id: &str) -> Self {
        self.request_id = audit::request_id(id).map(Arc::from);
        self
    }

    /// The id of the request this caller made: its `X-Request-Id` header
    /// (set at the edge, e.g. by tower-http's `SetRequestIdLayer`), when it
    /// is 1 to 128 characters of `A–Z a–z 0–9 - _ . : / + = @`. Audit events
    /// carry it as `request_id`, and a [job](crate::job::Delegation)
    /// captured in this request carries it to every service the job calls.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// Record that this caller's request started the transaction `txn`
    /// (at the edge, where the Transaction Token was obtained).
    #[cfg_attr(not(feature = "oauth"), allow(dead_code))]
    pub(crate) fn audit_transaction_started(&self, txn: &str) {
        if !audit::enabled() {
            return;
        }
        let mut this = self.clone();
        this.started_txn = Some(txn.into());
        this.audit(true, "transaction token obtained", "transaction", None);
    }

    /// Record one audit decision about this caller (when audit events are
    /// collected).
    pub(crate) fn audit(
        &self,
        allowed: bool,
        reason: &str,
        permission: &str,
        resource: Option<&str>,
    ) {
        self.audit_policy(allowed, reason, permission, resource, "");
    }

    /// [`Caller::audit`] with what a policy decision point said about it
    /// (its decision contexts, as compact JSON).
    pub(crate) fn audit_policy(
        &self,
        allowed: bool,
        reason: &str,
        permission: &str,
        resource: Option<&str>,
        policy_context: &str,
    ) {
        if !audit::enabled() {
            return;
        }
        let user = self.user.as_ref();
        let service = self.service.as_ref();
        let who = audit::Who {
            user: user.map_or("", Principal::subject),
            user_issuer: user.map_or("", Principal::issuer),
            service: service.map_or("", Principal::subject),
            service_issuer: service.map_or("", Principal::issuer),
            actor: self
                .actor_id()
                .map(|a| format!("{}#{}", a.issuer(), a.subject()))
                .unwrap_or_default(),
            actors: self
                .actors()
                .iter()
                .map(Actor::subject)
                .collect::<Vec<_>>()
                .join(","),
            token_id: user
                .or(service)
                .map(|p| audit::token_id(p.token_id(), p.token()))
                .unwrap_or_default(),
            origin: self.origin.as_deref(),
            txn: self
                .transaction()
                .map(|t| t.txn())
                .or(self.started_txn.as_deref())
                .unwrap_or_default(),
            dpop_jkt: self.dpop_jkt().unwrap_or(""),
            x5t_s256: self.certificate_thumbprint().unwrap_or(""),
            request_id: self.request_id.as_deref().unwrap_or(""),
        };
        audit::decision(&who, allowed, reason, permission, resource, policy_context);
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
mod transaction_tests {
    use super::tests::principal;
    use super::*;

    crate::permission! {
        Read = "images:read";
        Delete = "images:delete";
    }

    #[test]
    fn a_transaction_bounds_every_guard() {
        let service = principal("tagger", &["images:read", "images:delete"]);
        let transaction = principal("txn-subject", &["images:read"]);
        let caller = Caller::new(None, Some(service)).with_transaction(Some(transaction));
        assert!(caller.require::<Read>().is_ok());
        assert!(caller.require::<Delete>().is_err(), "Require");
        assert!(
            caller.require_service::<Delete>().is_err(),
            "RequireService"
        );
        assert!(caller.require_service::<Read>().is_ok());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::Value;

    use super::*;
    use crate::{permission, permission::Permissions};

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
            payload: Some("{}".into()),
            token: "header.payload.signature-secret".into(),
            jti: None,
            issued_at: None,
            expires_at: 4_000_000_000,
            accepted_until: 4_000_000_060,
            not_before: None,
            actors: vec![],
            key_id: 0,
            confirmation: None,
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
            payload: Some(r#"{"tenant":"t1","sub":"a"}"#.into()),
            token: "t".into(),
            jti: None,
            issued_at: None,
            expires_at: 1,
            accepted_until: 61,
            not_before: None,
            actors: vec![],
            key_id: 0,
            confirmation: None,
        });
        assert_eq!(p.claims::<Mine>().unwrap().tenant, "t1");
        assert_eq!(p.claim("sub"), Some(&Value::String("a".into())));
        assert!(p.claims::<Vec<String>>().is_err());
    }
}
