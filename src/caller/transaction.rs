//! The view of a request's Transaction Token (see
//! [`transaction`](crate::transaction)).

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{Principal, PrincipalId};

/// The verified Transaction Token of a request: see
/// [`Caller::transaction`](crate::Caller::transaction).
#[derive(Clone, Copy)]
pub struct Transaction<'a>(pub(crate) &'a Principal);

impl<'a> Transaction<'a> {
    /// `txn`: the transaction's id, the same across the whole call chain.
    pub fn txn(&self) -> &'a str {
        self.str_claim("txn")
    }

    /// `sub`: whom the transaction is for, unique within the trust domain.
    pub fn subject(&self) -> &'a str {
        self.0.subject()
    }

    /// The transaction's subject as an identity: the trust domain (or the
    /// service's `iss`) and `sub`.
    pub fn id(&self) -> PrincipalId {
        self.0.id()
    }

    /// `scope`: the purpose, space-delimited.
    pub fn scope(&self) -> &'a str {
        self.str_claim("scope")
    }

    /// `req_wl`: the workload that asked for the token.
    pub fn requesting_workload(&self) -> &'a str {
        self.str_claim("req_wl")
    }

    /// `tctx`: the transaction's context, as the service decided it.
    pub fn tctx(&self) -> Option<&'a Map<String, Value>> {
        self.0.claim("tctx").and_then(Value::as_object)
    }

    /// `rctx`: the context of the request that started the transaction.
    pub fn rctx(&self) -> Option<&'a Map<String, Value>> {
        self.0.claim("rctx").and_then(Value::as_object)
    }

    /// `tctx` read into the application's own type.
    ///
    /// # Errors
    ///
    /// When `tctx` is missing or does not fit `T`.
    pub fn tctx_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(self.0.claim("tctx").unwrap_or(&Value::Null))
    }

    /// The principal of the token (its permissions are its `scope`).
    pub fn principal(&self) -> &'a Principal {
        self.0
    }

    /// The token as received, to forward unmodified.
    ///
    /// # Security
    ///
    /// A bearer credential inside the trust domain: never log it.
    pub fn token(&self) -> &'a str {
        self.0.token()
    }

    fn str_claim(&self, name: &str) -> &'a str {
        self.0.claim(name).and_then(Value::as_str).unwrap_or("")
    }
}

impl fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("txn", &self.txn())
            .field("sub", &self.subject())
            .field("scope", &self.scope())
            .field("req_wl", &self.requesting_workload())
            .finish_non_exhaustive()
    }
}
