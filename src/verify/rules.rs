//! Rules on claims beyond the registered ones: values a claim must have,
//! the claim the audience is read from, a check of the application's own,
//! and issuers that name a tenant (`https://login.microsoftonline.com/{tid}/v2.0`).

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::{AuthError, Issuer};

/// What a claim's value must be: of an issuer's tokens, or of a slot's.
#[derive(Clone, Debug)]
pub(crate) struct ClaimRule {
    pub(super) claim: String,
    /// The value must equal one of these (one for an equality).
    pub(super) values: Vec<Value>,
}

impl ClaimRule {
    pub(crate) fn new<I, V>(claim: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<Value>,
    {
        ClaimRule {
            claim: claim.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether `claims` hold the claim with one of the values.
    pub(crate) fn holds(&self, claims: &Map<String, Value>) -> bool {
        claims
            .get(&self.claim)
            .is_some_and(|v| self.values.contains(v))
    }

    /// Whether no token can satisfy both rules: the same claim, no value in common.
    pub(crate) fn excludes(&self, other: &ClaimRule) -> bool {
        self.claim == other.claim && !self.values.iter().any(|v| other.values.contains(v))
    }

    /// A missing claim, or one of another value, refuses the token.
    pub(super) fn check(&self, claims: &Map<String, Value>) -> Result<(), AuthError> {
        match claims.get(&self.claim) {
            None | Some(Value::Null) => Err(AuthError::invalid_token("missing required claim")),
            Some(value) if self.values.contains(value) => Ok(()),
            Some(_) => Err(AuthError::invalid_token("claim value not allowed")),
        }
    }
}

/// The application's own check of a token's claims; `Err` carries the
/// refusal's reason (it goes into the audit event).
pub(super) type ClaimsCheck =
    Arc<dyn Fn(&Map<String, Value>) -> Result<(), &'static str> + Send + Sync>;

/// An issuer identifier with a `{tid}` placeholder: the token's `iss` must
/// be the template with the token's own `tid` in its place, and that
/// tenant allowed.
#[derive(Clone)]
pub(super) struct TenantTemplate {
    prefix: Box<str>,
    suffix: Box<str>,
}

/// The placeholder of a tenant template.
pub(crate) const TENANT: &str = "{tid}";

impl TenantTemplate {
    pub(super) fn parse(template: &str) -> Option<Self> {
        let (prefix, suffix) = template.split_once(TENANT)?;
        (!suffix.contains(TENANT) && !prefix.is_empty()).then(|| TenantTemplate {
            prefix: prefix.into(),
            suffix: suffix.into(),
        })
    }

    /// Whether `iss` could be this template filled with some tenant.
    pub(super) fn fits(&self, iss: &str) -> bool {
        iss.len() > self.prefix.len() + self.suffix.len()
            && iss.starts_with(&*self.prefix)
            && iss.ends_with(&*self.suffix)
    }

    /// Whether `iss` is this template filled with the token's `tid`, one of
    /// `tenants` (any when `None`). Never a free wildcard: without `tid`, or
    /// with a `tid` other than the one in `iss`, nothing matches.
    pub(super) fn matches(
        &self,
        iss: &str,
        tid: Option<&Value>,
        tenants: Option<&[String]>,
    ) -> bool {
        let Some(Value::String(tid)) = tid else {
            return false;
        };
        let tenant_ok = !tid.is_empty()
            && tid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        tenant_ok
            && iss.len() == self.prefix.len() + tid.len() + self.suffix.len()
            && iss.starts_with(&*self.prefix)
            && iss.ends_with(&*self.suffix)
            && iss[self.prefix.len()..iss.len() - self.suffix.len()] == **tid
            && tenants.is_none_or(|allowed| allowed.iter().any(|t| t == tid))
    }
}

impl fmt::Debug for TenantTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantTemplate")
            .field(
                "template",
                &format_args!("{}{TENANT}{}", self.prefix, self.suffix),
            )
            .finish()
    }
}

impl Issuer {
    /// Trust the issuers of a multi-tenant provider: `template` holds the
    /// placeholder `{tid}` (Entra ID:
    /// `https://login.microsoftonline.com/{tid}/v2.0`), and a token's `iss`
    /// must be the template with the token's own `tid` claim in its place —
    /// never a free wildcard. Any tenant, unless
    /// [`with_tenants`](Self::with_tenants) names them. The principal's
    /// issuer is the token's `iss`, so identities stay per tenant.
    ///
    /// ```
    /// use tower_mandate::{Issuer, Verifier};
    /// # use tower_mandate::testing::TestIssuer;
    /// let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    /// let iss = format!("https://login.microsoftonline.com/{tid}/v2.0");
    /// # let idp = TestIssuer::rs256(iss.clone());
    /// let verifier = Verifier::new([
    ///     Issuer::for_tenants("https://login.microsoftonline.com/{tid}/v2.0", "api://image-store")
    ///         .with_tenants([tid])
    ///         .with_keys(idp.key_set()),
    /// ])?;
    /// let token = idp.token("alice").audience("api://image-store").claim("tid", tid.into()).sign();
    /// assert_eq!(verifier.verify(&token)?.issuer(), iss);
    /// // The same token shape from a tenant that is not allowed is refused.
    /// let other = "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0";
    /// let token = idp.token("mallory").audience("api://image-store")
    ///     .claim("iss", other.into())
    ///     .claim("tid", "00000000-0000-0000-0000-000000000000".into()).sign();
    /// assert!(verifier.verify(&token).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn for_tenants(template: impl Into<String>, audience: impl Into<String>) -> Self {
        let mut issuer = Issuer::new(template, audience);
        issuer.template = TenantTemplate::parse(&issuer.name);
        issuer
    }

    /// Accept only these tenants (`tid`) of a [`for_tenants`](Self::for_tenants) issuer.
    pub fn with_tenants<I, S>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tenants = Some(tenants.into_iter().map(Into::into).collect());
        self
    }

    /// Require a top-level claim to have this value
    /// (`require_claim_eq("token_use", "access")` for Cognito).
    pub fn require_claim_eq(self, claim: impl Into<String>, value: impl Into<Value>) -> Self {
        self.require_claim_in(claim, [value])
    }

    /// Require a top-level claim to have one of these values (an `azp`,
    /// `client_id` or `tid` allow-list). Several rules all apply.
    pub fn require_claim_in<I, V>(mut self, claim: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<Value>,
    {
        self.claim_rules.push(ClaimRule::new(claim, values));
        self
    }

    /// Read the audience from this top-level claim instead of `aud` (a
    /// string or an array of strings): Cognito access tokens have no `aud`
    /// and carry the app client in `client_id`. The audiences given to
    /// [`Issuer::new`] and [`add_audience`](Self::add_audience) are then
    /// matched against it.
    pub fn with_audience_claim(mut self, claim: impl Into<String>) -> Self {
        self.audience_claim = Some(claim.into());
        self
    }

    /// Check the verified claims with the application's own rule, once per
    /// token (tokens from the verified-token cache are not checked again).
    /// `Err` refuses the token with 401; its reason goes into the audit
    /// event.
    ///
    /// ```
    /// use tower_mandate::{Issuer, Verifier};
    /// # use tower_mandate::testing::TestIssuer;
    /// # let idp = TestIssuer::rs256("https://id.example");
    /// let verifier = Verifier::new([Issuer::new("https://id.example", "a")
    ///     .with_keys(idp.key_set())
    ///     .with_claims_check(|claims| match claims.get("email_verified") {
    ///         Some(serde_json::Value::Bool(true)) => Ok(()),
    ///         _ => Err("email not verified"),
    ///     })])?;
    /// let ok = idp.token("alice").audience("a").claim("email_verified", true.into()).sign();
    /// assert!(verifier.verify(&ok).is_ok());
    /// let err = verifier.verify(&idp.token("bob").audience("a").sign()).unwrap_err();
    /// assert_eq!(err.reason(), "email not verified");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_claims_check(
        mut self,
        check: impl Fn(&Map<String, Value>) -> Result<(), &'static str> + Send + Sync + 'static,
    ) -> Self {
        self.claims_check = Some(Arc::new(check));
        self
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_template_matches_its_own_tenant_only() {
        let t = TenantTemplate::parse("https://login.microsoftonline.com/{tid}/v2.0").unwrap();
        let tid = json!("72f988bf-86f1-41af-91ab-2d7cd011db47");
        let iss = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0";
        assert!(t.matches(iss, Some(&tid), None));
        // Another tenant's tid, no tid, a tid that is a path.
        assert!(!t.matches(
            iss,
            Some(&json!("00000000-0000-0000-0000-000000000000")),
            None
        ));
        assert!(!t.matches(iss, None, None));
        let sneaky = "https://login.microsoftonline.com/a/b/v2.0";
        assert!(!t.matches(sneaky, Some(&json!("a/b")), None));
        assert!(!t.matches("https://evil.example/x/v2.0", Some(&json!("x")), None));
        let allowed = ["other".to_owned()];
        assert!(
            !t.matches(iss, Some(&tid), Some(&allowed)),
            "not an allowed tenant"
        );
        assert!(TenantTemplate::parse("https://no-placeholder").is_none());
        assert!(TenantTemplate::parse("{tid}").is_none());
    }

    #[test]
    fn claim_rules_check_values() {
        let rule = ClaimRule {
            claim: "token_use".into(),
            values: vec![json!("access")],
        };
        let claims = |v: Value| v.as_object().unwrap().clone();
        assert!(rule.check(&claims(json!({"token_use": "access"}))).is_ok());
        assert!(rule.check(&claims(json!({"token_use": "id"}))).is_err());
        assert!(rule.check(&claims(json!({}))).is_err());
        assert!(rule.check(&claims(json!({"token_use": null}))).is_err());
    }
}
