//! Rules on claims beyond the registered ones: values a claim must have,
//! the claim the audience is read from, a check of the application's own,
//! and issuers that name a tenant (`https://login.microsoftonline.com/{tid}/v2.0`).

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::AuthError;

/// What a claim's value must be.
#[derive(Clone, Debug)]
pub(super) struct ClaimRule {
    pub(super) claim: String,
    /// The value must equal one of these (one for an equality).
    pub(super) values: Vec<Value>,
}

impl ClaimRule {
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
