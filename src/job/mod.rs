//! Work done later on a user's behalf: a durable, queueable delegation
//! instead of a captured access token (features `oauth` and `aws-lc-rs`).
//!
//! A job that acts for a user after the request is answered — a queue
//! consumer, a periodic job — must not replay the user's access token (it
//! expires in minutes; queues wait hours) nor use a broad service token. A
//! [`Delegation`] (features `oauth` and `aws-lc-rs`) captures, while the
//! user's token is valid, what the job will need, by one of three standard
//! routes ([`Grant`]):
//!
//! | route | at capture | when the job runs |
//! |---|---|---|
//! | [`Grant::refresh_token`] | RFC 8693 exchange of the user's token for a refresh token narrowed to the job's audience and scope, this service the client | refresh token grant: a fresh token for the user, this service as `act` |
//! | [`Grant::jwt_bearer`] | nothing: only who the user is | RFC 7523: this service asserts "act for this user" with its own signed JWT |
//! | [`Grant::transaction`] | a replacement Transaction Token narrowed to the job's scope | sent as `Txn-Token` beside the service's own token |
//!
//! The result is a [`JobHandle`]: `serde`, sealed with AES-256-GCM
//! (aws-lc-rs) under the application's [`SealingKeys`], which authenticate
//! its purpose, audience, expiry and key id. [`Delegation::open`] turns it
//! back into a [`Job`] in any process holding the keys; [`Job::token`]
//! checks the revocation store first (a user revoked since capture gets
//! nothing, and an audit event says so), then asks the authorization
//! server. The job's calls carry the capturing request's id
//! (`X-Request-Id`), which the called services' audit events record; the
//! job's own events also record the capturing request's `txn`, which on
//! the transaction route the called services read from the `Txn-Token`.
//! A `[jobs.<name>]` table of `config::MandateConfig`
//! (feature `config`) describes a delegation in a file. Jobs with no user
//! run as the service: [`AsService`](crate::provider::AsService).
//!
//! What a handle protects against, and what it does not:
//!
//! - **Reading the queue** gives no credential: the refresh token (or
//!   Transaction Token) is encrypted, the JWT-bearer route holds none, and
//!   the user and the request id are sealed too.
//! - **Editing a handle** (another user, a later expiry, one byte
//!   anywhere) breaks its tag: [`JobErrorKind::Tampered`]. Handles cannot be
//!   forged without the key, so a queue writer cannot make the service act
//!   for a user who never made a request.
//! - **Moving a handle** to another purpose or audience, or to another
//!   delegation that shares the keys (another route, token endpoint,
//!   client or issuer), breaks its tag; an authentic handle opened for
//!   another purpose is [`JobErrorKind::WrongPurpose`].
//! - **Another issuer's user** with the same `sub` is never captured: each
//!   route acts for one issuer's users ([`JobErrorKind::NoUser`]).
//! - **Replaying a handle** is possible until it expires: a handle is a
//!   capability, as a message on the queue is. Bound it
//!   ([`DelegationBuilder::with_max_lifetime`], re-checked when a handle
//!   is opened), and make the work idempotent. An authorization server that
//!   rotates refresh tokens makes a refresh-token handle single use
//!   ([`Job::reseal`] keeps the rotated token for a retry).
//! - **Revocation** (with [`DelegationBuilder::with_revocation`]):
//!   `revoke_subject` stops every job of the user, `revoke_token` of the
//!   [job's id](Job::id) one job, and of the captured token's `jti` the jobs
//!   captured with it; on the transaction route the transaction's subject
//!   is checked too. A store that cannot answer refuses the job.
//! - **A retired key** ([`JobErrorKind::UnknownKey`]): handles sealed under
//!   it no longer open. Rotate by sealing under a new key and keeping the
//!   old one as previous for the longest job lifetime.
//! - **The sealing key** is as sensitive as the client's credentials:
//!   with it, every queued refresh token can be read and, on the JWT-bearer
//!   route, a handle forged for any user of the issuer. Keep it in a
//!   secret store, apart from the queue.
//! - **`X-Request-Id`** comes from the request: it correlates, it does not
//!   authenticate. Strip the client's header at the edge when the id must
//!   be yours.
//!
//! ```
//! use std::time::Duration;
//! use tower_mandate::job::{Delegation, Grant, JobErrorKind, JobHandle, SealingKeys};
//! use tower_mandate::provider::{ClientAuth, TokenRequest};
//! use tower_mandate::testing::TestIssuer;
//! use tower_mandate::{Caller, Issuer, Verifier, keys::Algorithm, mint::SigningKey};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let idp = TestIssuer::es256("https://id.example").with_audience("uploads");
//! let users = Verifier::new([Issuer::new(idp.issuer(), "uploads").with_keys(idp.key_set())])?;
//! let alice = Caller::new(Some(users.verify(&idp.token("alice").scope("images:write").sign())?), None)
//!     .with_request_id("req-1");
//!
//! // RFC 7523: nothing is asked at capture; the worker asserts alice later.
//! let jobs = Delegation::builder(
//!     Grant::jwt_bearer(
//!         "https://id.example/token",
//!         "tagger",
//!         ClientAuth::SecretBasic("tagger-secret".into()),
//!         idp.issuer(),
//!         SigningKey::generate(Algorithm::ES256, "tagger-1"),
//!     ),
//!     SealingKeys::new("2026-12", &[7u8; 32])?,
//! )
//! .build();
//! let request = TokenRequest::for_audience("image-store").with_scope("images:write");
//! let handle = jobs.capture(&alice, "tag-image", request, Duration::from_secs(3600)).await?;
//! let queued = serde_json::to_string(&handle)?;
//! assert!(!queued.contains("alice") && !queued.contains("req-1")); // sealed
//!
//! // The worker, in another process with the same keys:
//! let handle: JobHandle = serde_json::from_str(&queued)?;
//! let job = jobs.open(&handle, "tag-image")?;
//! assert_eq!(job.user().subject(), "alice");
//! assert_eq!(job.request_id(), "req-1");
//! // ... `job.token().await?` asks the authorization server now.
//!
//! // A handle moved to another purpose does not open.
//! let moved: JobHandle = serde_json::from_str(&queued.replace("tag-image", "delete-all"))?;
//! assert_eq!(jobs.open(&moved, "delete-all").unwrap_err().kind(), JobErrorKind::Tampered);
//! # Ok(()) }
//! ```

mod delegation;
mod grant;
mod handle;
mod run;
mod seal;

pub use delegation::{Delegation, DelegationBuilder};
pub use grant::Grant;
pub use handle::{JobError, JobErrorKind, JobHandle};
pub use run::{Job, JobToken};
pub use seal::{KEY_LEN, SealingKeys};
