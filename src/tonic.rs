//! tonic integration (feature `tonic`): the same [`MandateLayer`](crate::MandateLayer)
//! under `Server::builder().layer(..)`, gRPC status codes for refusals, and
//! guard helpers for handlers that return a [`tonic::Status`].
//!
//! ```
//! use tonic::{Request, Response, Status};
//! use tower_mandate::permission;
//! use tower_mandate::tonic::RequestExt;
//!
//! permission! { pub ImagesRead = "images:read"; }
//!
//! async fn get(request: Request<String>) -> Result<Response<String>, Status> {
//!     let caller = request.require::<ImagesRead>()?;
//!     Ok(Response::new(format!("{:?}", caller.user().map(|u| u.subject()))))
//! }
//! ```
//!
//! For gRPC requests the layer answers refusals itself with trailers-only
//! responses (see [`DefaultRejection`](crate::server::DefaultRejection)):
//! UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT or UNAVAILABLE.

use tonic::{Code, Status};

use crate::{
    AuthError, Caller,
    permission::{Permission, PermissionCheck},
};

const MISSING_LAYER: &str = "tower_mandate: no MandateLayer ran for this request; add \
     `.layer(MandateLayer::…)` to `Server::builder()` so that the Caller is in the request";

impl From<AuthError> for Status {
    /// UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT or UNAVAILABLE,
    /// with the error's fixed reason as the message.
    /// A step-up refusal (RFC 9470) and a DPoP refusal carry their
    /// challenge in the `www-authenticate` metadata.
    fn from(error: AuthError) -> Status {
        let code = Code::from(i32::from(error.kind().grpc_code()));
        let challenge = error
            .www_authenticate()
            .filter(|c| c.contains("insufficient_user_authentication") || c.contains("DPoP"));
        let Some(challenge) = challenge else {
            return Status::new(code, error.reason());
        };
        // The challenge in the status details too (as its text), for
        // clients that read details rather than metadata.
        let mut metadata = tonic::metadata::MetadataMap::new();
        if let Ok(value) = challenge.parse() {
            metadata.insert("www-authenticate", value);
        }
        Status::with_details_and_metadata(
            code,
            error.reason(),
            bytes::Bytes::from(challenge),
            metadata,
        )
    }
}

/// Guards on a tonic request whose server runs a `MandateLayer`.
pub trait RequestExt {
    /// The verified caller.
    ///
    /// # Errors
    ///
    /// UNAUTHENTICATED for an anonymous request; INTERNAL when no layer ran.
    fn caller(&self) -> Result<&Caller, Status>;

    /// Every verified principal holds `P` (see [`Caller::require`]).
    ///
    /// # Errors
    ///
    /// UNAUTHENTICATED or PERMISSION_DENIED.
    fn require<P: PermissionCheck>(&self) -> Result<&Caller, Status> {
        let caller = self.caller()?;
        caller.require::<P>()?;
        Ok(caller)
    }

    /// The user holds `P` (see [`Caller::require_user`]).
    ///
    /// # Errors
    ///
    /// UNAUTHENTICATED or PERMISSION_DENIED.
    fn require_user<P: PermissionCheck>(&self) -> Result<&Caller, Status> {
        let caller = self.caller()?;
        caller.require_user::<P>()?;
        Ok(caller)
    }

    /// The calling service holds `P` (see [`Caller::require_service`]).
    ///
    /// # Errors
    ///
    /// UNAUTHENTICATED or PERMISSION_DENIED.
    fn require_service<P: PermissionCheck>(&self) -> Result<&Caller, Status> {
        let caller = self.caller()?;
        caller.require_service::<P>()?;
        Ok(caller)
    }

    /// The user authenticated as `A` asks (RFC 9470; see
    /// [`step_up`](crate::step_up)).
    ///
    /// # Errors
    ///
    /// UNAUTHENTICATED with the challenge in `www-authenticate` metadata.
    fn require_authentication<A: crate::step_up::AuthenticationLevel>(
        &self,
    ) -> Result<&Caller, Status> {
        let caller = self.caller()?;
        caller.require_authentication::<A>()?;
        Ok(caller)
    }

    /// The ownership rule for `resource` owned by `owner` (see
    /// [`Caller::require_owner_of`]); call it before any mutation.
    ///
    /// # Errors
    ///
    /// UNAUTHENTICATED or PERMISSION_DENIED.
    fn require_owner_of<P: Permission>(
        &self,
        resource: &str,
        owner: &crate::PrincipalId,
    ) -> Result<&Caller, Status> {
        let caller = self.caller()?;
        caller.require_owner_of::<P>(resource, owner)?;
        Ok(caller)
    }
}

impl<T> RequestExt for tonic::Request<T> {
    fn caller(&self) -> Result<&Caller, Status> {
        let caller = self.extensions().get::<Caller>().or_else(|| {
            // Let through unauthenticated by the layer: nobody is calling.
            self.extensions()
                .get::<crate::server::skip::Skipped>()
                .map(|_| &crate::caller::NOBODY)
        });
        match caller {
            None => {
                tracing::error!(target: "tower_mandate::tonic", "{MISSING_LAYER}");
                Err(Status::internal(MISSING_LAYER))
            }
            Some(caller) if caller.is_anonymous() => {
                caller.audit(false, "no credentials", "authenticate", None);
                Err(AuthError::missing_credentials().into())
            }
            Some(caller) => Ok(caller),
        }
    }
}
