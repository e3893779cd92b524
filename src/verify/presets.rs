//! Issuers shaped as the common identity providers document their access
//! tokens: where the issuer, audience, roles and scopes live, and what
//! tells an access token from an ID token. Each is an ordinary [`Issuer`]
//! to refine further; keys are set as for any issuer (the README's table
//! names each provider's key location).

use serde_json::Value;

use crate::Issuer;
use crate::keys::Algorithm;
use crate::permission::PermissionMapping;

/// An RFC 6901 pointer segment: `~` and `/` escaped.
fn pointer_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

impl Issuer {
    /// Keycloak (`https://<host>/realms/<realm>`): access tokens for the
    /// client `client_id` — its audience, added by an "Audience" mapper in
    /// Keycloak — with `typ: "Bearer"` in the payload (ID and refresh
    /// tokens say `ID` and `Refresh`), roles from `realm_access.roles` and
    /// `resource_access.<client_id>.roles`, scopes from `scope`. Keys: OIDC
    /// discovery, or `<issuer>/protocol/openid-connect/certs`.
    pub fn keycloak(issuer: impl Into<String>, client_id: &str) -> Self {
        Issuer::new(issuer, client_id)
            .with_algorithms([Algorithm::RS256, Algorithm::ES256, Algorithm::PS256])
            .require_claim_eq("typ", "Bearer")
            .with_permissions(PermissionMapping::default().with_role_claims([
                "/realm_access/roles".to_owned(),
                format!("/resource_access/{}/roles", pointer_segment(client_id)),
            ]))
    }

    /// Auth0 (`https://<tenant>.auth0.com/`, trailing slash included):
    /// access tokens for the API `audience` (its identifier), RS256,
    /// permissions from `scope` and, with RBAC on, `permissions`. Roles come
    /// from a namespaced claim of an Action: add it with
    /// [`PermissionMapping::with_role_claims`]. Keys: OIDC discovery.
    pub fn auth0(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Issuer::new(issuer, audience).with_algorithms([Algorithm::RS256])
    }

    /// Microsoft Entra ID v2.0 tokens of the tenants `tenants`
    /// (`https://login.microsoftonline.com/{tid}/v2.0`, checked against the
    /// token's own `tid`) for the API `audience` (its application ID URI or
    /// client id): delegated permissions from `scp`, app roles from
    /// `roles`. App-only tokens carry `idtyp: "app"` (an optional claim to
    /// turn on). Keys:
    /// `https://login.microsoftonline.com/common/discovery/v2.0/keys`.
    pub fn entra<I, S>(tenants: I, audience: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::entra_template("https://login.microsoftonline.com/{tid}/v2.0", audience)
            .with_tenants(tenants)
    }

    /// Microsoft Entra ID v1.0 tokens (`https://sts.windows.net/{tid}/`),
    /// as [`Issuer::entra`] for v2.0. Keys: the same document.
    pub fn entra_v1<I, S>(tenants: I, audience: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::entra_template("https://sts.windows.net/{tid}/", audience).with_tenants(tenants)
    }

    /// Entra ID tokens of **every** tenant (a multi-tenant application):
    /// the v2.0 issuer form, or v1.0 with `v1`. Every tenant's tokens are
    /// signed with the same keys, and anyone can make a tenant and an
    /// application in it with any application ID URI: the audience must be
    /// the application's client id (a GUID, unique across tenants), or
    /// building the verifier fails. The application then decides which
    /// tenants it serves (`with_claims_check`, or [`Issuer::entra`]).
    pub fn entra_any_tenant(client_id: impl Into<String>, v1: bool) -> Self {
        let template = if v1 {
            "https://sts.windows.net/{tid}/"
        } else {
            "https://login.microsoftonline.com/{tid}/v2.0"
        };
        let mut issuer = Self::entra_template(template, client_id);
        issuer.audiences_must_be_guids = true;
        issuer
    }

    fn entra_template(template: &str, audience: impl Into<String>) -> Self {
        Issuer::for_tenants(template, audience)
            .with_algorithms([Algorithm::RS256])
            .with_permissions(PermissionMapping::default().with_permission_claims(["scp"]))
    }

    /// Amazon Cognito user pools
    /// (`https://cognito-idp.<region>.amazonaws.com/<pool id>`): access
    /// tokens have no `aud`, so the app client is read from `client_id`
    /// (one of `client_ids`) and `token_use` must be `access` (an ID token,
    /// `token_use: "id"`, is refused); scopes from `scope`, groups from
    /// `cognito:groups`. Keys: `<issuer>/.well-known/jwks.json`.
    pub fn cognito<I, S>(issuer: impl Into<String>, client_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut ids = client_ids.into_iter().map(Into::into);
        let first = ids.next().unwrap_or_default();
        let mut issuer = Issuer::new(issuer, first)
            .with_audience_claim("client_id")
            .with_algorithms([Algorithm::RS256])
            .require_claim_eq("token_use", "access")
            .with_permissions(
                PermissionMapping::default()
                    .with_permission_claims(["scope"])
                    .with_role_claims(["cognito:groups"]),
            );
        for id in ids {
            issuer = issuer.add_audience(id);
        }
        issuer
    }

    /// Google-signed ID tokens (`https://accounts.google.com`) for
    /// `audience` — Google's access tokens are opaque, so services verify
    /// ID tokens (Cloud Run, IAP, service accounts calling with an ID
    /// token). `email_verified` must be `true`. Keys: OIDC discovery, or
    /// `https://www.googleapis.com/oauth2/v3/certs`.
    pub fn google(audience: impl Into<String>) -> Self {
        Issuer::new("https://accounts.google.com", audience)
            .with_algorithms([Algorithm::RS256])
            .require_claim_eq("email_verified", Value::Bool(true))
    }

    /// Okta custom authorization servers (`https://<org>/oauth2/<server>`)
    /// for `audience` (`api://default` on the default server): scopes from
    /// `scp` (an array), groups from a `groups` claim when the server adds
    /// one. Keys: OIDC discovery.
    pub fn okta(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Issuer::new(issuer, audience)
            .with_algorithms([Algorithm::RS256])
            .with_permissions(
                PermissionMapping::default()
                    .with_permission_claims(["scp"])
                    .with_role_claims(["groups"]),
            )
    }
}
