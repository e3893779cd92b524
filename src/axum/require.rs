//! The guards: extractors that exist only when the permission is held.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::FromRequestParts;
use http::request::Parts;

use super::{MandateRejection, authenticated, refuse};
use crate::permission::PermissionCheck;
use crate::{Caller, Principal};

/// Extractor: every verified principal holds `P` (see [`Caller::require`]).
/// Derefs to the [`Caller`].
pub struct Require<P>(Caller, PhantomData<fn() -> P>);

/// Extractor: the user holds `P`; a service, if present, has verified.
pub struct RequireUser<P>(Caller, PhantomData<fn() -> P>);

/// Extractor: the calling service holds `P`; a user, if present, has verified.
pub struct RequireService<P>(Caller, PhantomData<fn() -> P>);

macro_rules! guard {
    ($name:ident, $check:ident, $what:literal) => {
        impl<P> $name<P> {
            /// The whole caller.
            pub fn caller(&self) -> &Caller {
                &self.0
            }

            /// Unwrap the caller.
            pub fn into_caller(self) -> Caller {
                self.0
            }
        }

        impl<P> Deref for $name<P> {
            type Target = Caller;
            fn deref(&self) -> &Caller {
                &self.0
            }
        }

        impl<P> Clone for $name<P> {
            fn clone(&self) -> Self {
                $name(self.0.clone(), PhantomData)
            }
        }

        impl<P> fmt::Debug for $name<P> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0).finish()
            }
        }

        impl<P: PermissionCheck, S: Send + Sync> FromRequestParts<S> for $name<P> {
            type Rejection = MandateRejection;

            async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
                let caller = authenticated(parts)?;
                match caller.$check::<P>() {
                    Ok(_) => Ok($name(caller.clone(), PhantomData)),
                    Err(error) => {
                        tracing::debug!(
                            target: "tower_mandate::axum",
                            guard = $what,
                            scope = %P::scope(),
                            "permission missing"
                        );
                        Err(refuse(parts, error))
                    }
                }
            }
        }
    };
}

guard!(Require, require, "every principal");
guard!(RequireUser, require_user, "user");
guard!(RequireService, require_service, "service");

/// Extractor: the user authenticated as `A` asks (RFC 9470; see
/// [`step_up`](crate::step_up)); 401 `insufficient_user_authentication`
/// otherwise. Combine it with a permission guard. Derefs to the [`Caller`].
pub struct RequireAuthentication<A>(Caller, PhantomData<fn() -> A>);

impl<A> Deref for RequireAuthentication<A> {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl<A> fmt::Debug for RequireAuthentication<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequireAuthentication")
            .field(&self.0)
            .finish()
    }
}

impl<A: crate::step_up::AuthenticationLevel, S: Send + Sync> FromRequestParts<S>
    for RequireAuthentication<A>
{
    type Rejection = MandateRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let caller = authenticated(parts)?;
        match caller.require_authentication::<A>() {
            Ok(()) => Ok(RequireAuthentication(caller.clone(), PhantomData)),
            Err(error) => Err(refuse(parts, error)),
        }
    }
}

impl<P> RequireUser<P> {
    /// The user, who holds `P`.
    pub fn principal(&self) -> &Principal {
        self.0.user().expect("checked at extraction")
    }
}

impl<P> RequireService<P> {
    /// The calling service, which holds `P`.
    pub fn principal(&self) -> &Principal {
        self.0.service().expect("checked at extraction")
    }
}
