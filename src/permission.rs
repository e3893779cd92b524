//! Permissions: the [`Permission`] trait, the [`permission!`](macro@crate::permission)
//! macro, the [`AllOf`] / [`AnyOf`] combinators, and how claims and roles map
//! to a [`Permissions`] set ([`PermissionMapping`]).
//!
//! ```
//! use tower_mandate::{permission::{AllOf, AnyOf, Permission, PermissionCheck, Permissions}, permission};
//!
//! permission! {
//!     /// Read images.
//!     pub ImagesRead = "images:read";
//!     /// Write images.
//!     pub ImagesWrite = "images:write";
//! }
//!
//! let held = Permissions::from_iter(["images:read"]);
//! assert!(ImagesRead::holds(&held));
//! assert!(!<AllOf<(ImagesRead, ImagesWrite)>>::holds(&held));
//! assert!(<AnyOf<(ImagesRead, ImagesWrite)>>::holds(&held));
//! assert_eq!(ImagesRead::ANY, "images:read:any");
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use serde_json::{Map, Value};

/// A named permission, declared with [`permission!`](macro@crate::permission).
pub trait Permission: Send + Sync + 'static {
    /// The permission as it appears in tokens (e.g. `"images:read"`).
    const NAME: &'static str;
    /// The matching "any" permission (e.g. `"images:read:any"`), which lets a
    /// caller act on resources it does not own.
    const ANY: &'static str;
}

/// Declare permission types.
///
/// Each line declares a unit struct implementing [`Permission`], with `ANY`
/// set to the name followed by `:any`.
///
/// ```
/// tower_mandate::permission! {
///     /// Delete images.
///     pub ImagesDelete = "images:delete";
///     pub(crate) TagsWrite = "tags:write";
/// }
/// use tower_mandate::permission::Permission;
/// assert_eq!(ImagesDelete::NAME, "images:delete");
/// assert_eq!(TagsWrite::ANY, "tags:write:any");
/// ```
#[macro_export]
macro_rules! permission {
    ($($(#[$meta:meta])* $vis:vis $name:ident = $value:literal;)+) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
            $vis struct $name;

            impl $crate::permission::Permission for $name {
                const NAME: &'static str = $value;
                const ANY: &'static str = concat!($value, ":any");
            }
        )+
    };
}

/// A requirement on a permission set: a [`Permission`], [`AllOf`] or [`AnyOf`].
pub trait PermissionCheck: Send + Sync + 'static {
    /// Whether `held` satisfies the requirement.
    fn holds(held: &Permissions) -> bool;
    /// The scope named in a 403 challenge (space-delimited permission names).
    fn scope() -> Cow<'static, str>;
}

impl<P: Permission> PermissionCheck for P {
    #[inline]
    fn holds(held: &Permissions) -> bool {
        held.contains(P::NAME)
    }

    fn scope() -> Cow<'static, str> {
        Cow::Borrowed(P::NAME)
    }
}

/// Every permission of the tuple is required: `AllOf<(ImagesRead, TagsWrite)>`.
pub struct AllOf<T>(PhantomData<fn() -> T>);

/// At least one permission of the tuple is required: `AnyOf<(ImagesRead, ImagesReadAny)>`.
pub struct AnyOf<T>(PhantomData<fn() -> T>);

impl<T> fmt::Debug for AllOf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AllOf")
    }
}

impl<T> fmt::Debug for AnyOf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AnyOf")
    }
}

macro_rules! tuple_checks {
    ($($t:ident),+) => {
        impl<$($t: PermissionCheck),+> PermissionCheck for AllOf<($($t,)+)> {
            #[inline]
            fn holds(held: &Permissions) -> bool {
                true $(&& $t::holds(held))+
            }
            fn scope() -> Cow<'static, str> {
                let names: Vec<Cow<'static, str>> = vec![$($t::scope()),+];
                Cow::Owned(names.join(" "))
            }
        }

        impl<$($t: PermissionCheck),+> PermissionCheck for AnyOf<($($t,)+)> {
            #[inline]
            fn holds(held: &Permissions) -> bool {
                false $(|| $t::holds(held))+
            }
            fn scope() -> Cow<'static, str> {
                let names: Vec<Cow<'static, str>> = vec![$($t::scope()),+];
                Cow::Owned(names.join(" "))
            }
        }
    };
}

tuple_checks!(A);
tuple_checks!(A, B);
tuple_checks!(A, B, C);
tuple_checks!(A, B, C, D);
tuple_checks!(A, B, C, D, E);
tuple_checks!(A, B, C, D, E, F);
tuple_checks!(A, B, C, D, E, F, G);
tuple_checks!(A, B, C, D, E, F, G, H);

/// The permissions a principal holds: sorted, without duplicates.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Permissions(Vec<Box<str>>);

impl Permissions {
    /// Whether the set holds `name` (exact match).
    #[inline]
    pub fn contains(&self, name: &str) -> bool {
        self.0.binary_search_by(|p| (**p).cmp(name)).is_ok()
    }

    /// The permissions, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|p| &**p)
    }

    /// Number of permissions.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<S: Into<Box<str>>> FromIterator<S> for Permissions {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut v: Vec<Box<str>> = iter.into_iter().map(Into::into).collect();
        v.sort_unstable();
        v.dedup();
        Permissions(v)
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// The JSON shape a permission claim must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A space-delimited string (`scope`, RFC 8693 §4.2).
    Delimited,
    /// A space-delimited string or an array of strings (`scp`).
    DelimitedOrArray,
    /// An array of strings (`permissions`).
    Array,
}

/// Where a principal's permissions come from.
///
/// By default: `scope` (space-delimited string), `scp` (string or array),
/// `permissions` (array of strings), and roles read from the `roles` claim
/// mapped through a role table that starts empty. A claim of the wrong JSON
/// type refuses the token.
///
/// ```
/// use tower_mandate::permission::PermissionMapping;
///
/// // Keycloak: realm and client roles (a JSON Pointer; client ids hold
/// // dots) become permissions through a table.
/// let keycloak = PermissionMapping::default()
///     .with_role_claims(["/realm_access/roles", "/resource_access/image.store/roles"])
///     .add_role("image-admin", ["images:read:any", "images:delete:any"]);
/// // Auth0: a namespaced claim, one top-level name taken literally.
/// let auth0 = PermissionMapping::default().with_role_claims(["https://images.example.com/roles"]);
/// # let _ = (keycloak, auth0);
/// ```
#[derive(Clone, Debug)]
pub struct PermissionMapping {
    claims: Vec<(Vec<String>, Shape)>,
    role_claims: Vec<Vec<String>>,
    roles: HashMap<String, Vec<String>>,
}

impl Default for PermissionMapping {
    fn default() -> Self {
        PermissionMapping {
            claims: vec![
                (vec!["scope".into()], Shape::Delimited),
                (vec!["scp".into()], Shape::DelimitedOrArray),
                (vec!["permissions".into()], Shape::Array),
            ],
            role_claims: vec![vec!["roles".into()]],
            roles: HashMap::new(),
        }
    }
}

/// A claim path: an RFC 6901 JSON Pointer when it starts with `/`
/// (`/resource_access/image.store/roles`: `~1` is `/`, `~0` is `~`),
/// otherwise one top-level claim name taken literally, dots and all
/// (`https://images.example.com/roles`).
fn path(p: &str) -> Vec<String> {
    match p.strip_prefix('/') {
        Some(pointer) => pointer
            .split('/')
            .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
            .collect(),
        None => vec![p.to_owned()],
    }
}

fn lookup<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut v = claims.get(first)?;
    for seg in rest {
        v = v.as_object()?.get(seg)?;
    }
    Some(v)
}

impl PermissionMapping {
    /// The default mapping.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read permissions only from these claims: top-level names taken
    /// literally, or JSON Pointers starting with `/`.
    /// `scope` must be a string, `permissions` an array; other claims may be
    /// either a space-delimited string or an array of strings.
    pub fn with_permission_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.claims = claims
            .into_iter()
            .map(|c| {
                let c = c.as_ref();
                let shape = match c {
                    "scope" => Shape::Delimited,
                    "permissions" => Shape::Array,
                    _ => Shape::DelimitedOrArray,
                };
                (path(c), shape)
            })
            .collect();
        self
    }

    /// Read roles from these claims instead: top-level names taken
    /// literally (`https://images.example.com/roles`), or JSON Pointers
    /// (`/realm_access/roles`, `/resource_access/image.store/roles`).
    pub fn with_role_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.role_claims = claims.into_iter().map(|c| path(c.as_ref())).collect();
        self
    }

    /// Also read roles from this claim.
    pub fn add_role_claim(mut self, claim: &str) -> Self {
        self.role_claims.push(path(claim));
        self
    }

    /// Grant `permissions` to every principal holding `role`.
    pub fn add_role<I, S>(mut self, role: &str, permissions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.roles
            .entry(role.to_owned())
            .or_default()
            .extend(permissions.into_iter().map(Into::into));
        self
    }

    /// The top-level claim names this mapping reads.
    pub(crate) fn top_level_claims(&self) -> impl Iterator<Item = &str> {
        self.claims
            .iter()
            .map(|(path, _)| path)
            .chain(&self.role_claims)
            .filter_map(|path| path.first().map(String::as_str))
    }

    /// Compute the permissions and the roles of verified claims. Roles are
    /// read from the role claims whether or not a role grants anything
    /// (policies such as Cedar's use them); without a role table, a role
    /// claim of the wrong type is passed over rather than refused.
    ///
    /// # Errors
    ///
    /// Returns the name of a claim that has the wrong JSON type.
    pub(crate) fn extract(
        &self,
        claims: &Map<String, Value>,
    ) -> Result<(Permissions, Vec<Box<str>>), &'static str> {
        let mut out: Vec<Box<str>> = Vec::new();
        for (path, shape) in &self.claims {
            let Some(value) = lookup(claims, path) else {
                continue;
            };
            match (value, shape) {
                (Value::String(s), Shape::Delimited | Shape::DelimitedOrArray) => {
                    out.extend(s.split(' ').filter(|p| !p.is_empty()).map(Box::from));
                }
                (Value::Array(items), Shape::Array | Shape::DelimitedOrArray) => {
                    for item in items {
                        out.push(item.as_str().ok_or("permission claim")?.into());
                    }
                }
                _ => return Err("permission claim"),
            }
        }
        let strict = !self.roles.is_empty();
        let mut roles: Vec<Box<str>> = Vec::new();
        for path in &self.role_claims {
            let Some(value) = lookup(claims, path) else {
                continue;
            };
            let Some(items) = value.as_array() else {
                if strict {
                    return Err("role claim");
                }
                continue;
            };
            for role in items {
                let Some(role) = role.as_str() else {
                    if strict {
                        return Err("role claim");
                    }
                    continue;
                };
                if let Some(granted) = self.roles.get(role) {
                    out.extend(granted.iter().map(|p| Box::from(p.as_str())));
                }
                roles.push(role.into());
            }
        }
        Ok((out.into_iter().collect(), roles))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    crate::permission! {
        Read = "images:read";
        Write = "images:write";
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn claim_paths_are_literal_names_or_json_pointers() {
        let roles = |mapping: &PermissionMapping, v: Value| {
            mapping
                .extract(&claims(v))
                .unwrap()
                .1
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        // Auth0: a namespaced top-level claim, slashes and dots included.
        let auth0 =
            PermissionMapping::default().with_role_claims(["https://images.example.com/roles"]);
        assert_eq!(
            roles(
                &auth0,
                json!({"https://images.example.com/roles": ["editor"]})
            ),
            ["editor"]
        );
        assert!(roles(&auth0, json!({"https:": {"images": ["x"]}})).is_empty());
        // Keycloak: a client id with dots, inside a JSON Pointer.
        let keycloak = PermissionMapping::default()
            .with_role_claims(["/realm_access/roles", "/resource_access/image.store/roles"]);
        let token = json!({
            "realm_access": {"roles": ["user"]},
            "resource_access": {"image.store": {"roles": ["uploader"]}, "image": {"store": {"roles": ["no"]}}}
        });
        assert_eq!(roles(&keycloak, token), ["user", "uploader"]);
        // A dotted name is one literal claim now, not a path.
        let literal = PermissionMapping::default().with_role_claims(["realm_access.roles"]);
        assert!(roles(&literal, json!({"realm_access": {"roles": ["user"]}})).is_empty());
        // RFC 6901 escapes: ~1 is '/', ~0 is '~'.
        let escaped = PermissionMapping::default().with_role_claims(["/a~1b/c~0d"]);
        assert_eq!(roles(&escaped, json!({"a/b": {"c~d": ["r"]}})), ["r"]);
        assert!(
            escaped.top_level_claims().any(|c| c == "a/b"),
            "the top-level claim a pointer reads is captured"
        );
    }

    #[test]
    fn extraction_table() {
        struct Case {
            name: &'static str,
            mapping: PermissionMapping,
            claims: Value,
            want: Result<Vec<&'static str>, ()>,
        }
        let keycloak = PermissionMapping::default()
            .with_role_claims(["/realm_access/roles"])
            .add_role("admin", ["images:read:any", "images:delete:any"]);
        let cases = [
            Case {
                name: "scope string",
                mapping: PermissionMapping::default(),
                claims: json!({"scope": "a b  c"}),
                want: Ok(vec!["a", "b", "c"]),
            },
            Case {
                name: "scope array refused",
                mapping: PermissionMapping::default(),
                claims: json!({"scope": ["a"]}),
                want: Err(()),
            },
            Case {
                name: "scp either",
                mapping: PermissionMapping::default(),
                claims: json!({"scp": ["a", "b"], "permissions": ["c"]}),
                want: Ok(vec!["a", "b", "c"]),
            },
            Case {
                name: "scp string",
                mapping: PermissionMapping::default(),
                claims: json!({"scp": "a b"}),
                want: Ok(vec!["a", "b"]),
            },
            Case {
                name: "permissions as string refused",
                mapping: PermissionMapping::default(),
                claims: json!({"permissions": "a"}),
                want: Err(()),
            },
            Case {
                name: "permissions with a number refused",
                mapping: PermissionMapping::default(),
                claims: json!({"permissions": ["a", 1]}),
                want: Err(()),
            },
            Case {
                name: "roles ignored without a table",
                mapping: PermissionMapping::default(),
                claims: json!({"roles": ["admin"]}),
                want: Ok(vec![]),
            },
            Case {
                name: "keycloak roles",
                mapping: keycloak.clone(),
                claims: json!({"realm_access": {"roles": ["admin", "other"]}, "scope": "x"}),
                want: Ok(vec!["images:delete:any", "images:read:any", "x"]),
            },
            Case {
                name: "keycloak roles wrong type",
                mapping: keycloak,
                claims: json!({"realm_access": {"roles": "admin"}}),
                want: Err(()),
            },
            Case {
                name: "restricted claims",
                mapping: PermissionMapping::default().with_permission_claims(["scope"]),
                claims: json!({"scope": "a", "permissions": ["b"]}),
                want: Ok(vec!["a"]),
            },
        ];
        for case in cases {
            let got = case
                .mapping
                .extract(&claims(case.claims))
                .map(|(p, _)| p.iter().map(str::to_owned).collect::<Vec<_>>())
                .map_err(|_| ());
            let want = case
                .want
                .map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>());
            assert_eq!(got, want, "{}", case.name);
        }
    }

    #[test]
    fn roles_are_read_through_the_mapping() {
        let keycloak = PermissionMapping::default().with_role_claims(["/realm_access/roles"]);
        let token = claims(json!({"roles": ["admin"], "realm_access": {"roles": ["viewer"]}}));
        let (_, roles) = keycloak.extract(&token).unwrap();
        assert_eq!(roles, vec![Box::from("viewer")], "the configured path only");
        let (_, roles) = PermissionMapping::default()
            .extract(&claims(json!({"roles": "admin"})))
            .unwrap();
        assert!(
            roles.is_empty(),
            "a malformed role claim without a table is passed over"
        );
    }

    #[test]
    fn combinators() {
        let held = Permissions::from_iter(["images:read"]);
        assert!(Read::holds(&held));
        assert!(!Write::holds(&held));
        assert!(!<AllOf<(Read, Write)>>::holds(&held));
        assert!(<AnyOf<(Write, Read)>>::holds(&held));
        assert!(<AllOf<(Read, AnyOf<(Write, Read)>)>>::holds(&held));
        assert_eq!(<AllOf<(Read, Write)>>::scope(), "images:read images:write");
    }
}
