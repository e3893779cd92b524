//! One table of the image-sharing story, decided by both policy backends:
//! Cedar in the process (examples/policies/images.cedar) and a real Cerbos
//! PDP over AuthZEN 1.0 (tests/support/cerbos/policies). Each case must get
//! the same decision from both, under both evaluation semantics.

mod support;

use serde_json::json;
use support::World;
use tower_mandate::policy::{
    AuthZen, CedarPolicy, PolicyDecision, Resource, Semantic, SubjectRole,
};
use tower_mandate::{Caller, PrincipalId};

const ALL: &str = "images:read images:write images:delete tags:write";

struct Case {
    name: &'static str,
    caller: Caller,
    action: &'static str,
    resource: Resource,
    allowed: bool,
    /// The policy that decides an allowed case (both backends name it), or
    /// the Cedar policy that forbids a denied one; "" for none.
    policy: &'static str,
}

fn cases() -> Vec<Case> {
    let w = World::new();
    let alice = || w.caller(Some(w.users.token("alice").scope(ALL)), None);
    let bob = w.caller(Some(w.users.token("bob").scope(ALL)), None);
    let act_tagger = json!({"sub": "tagger", "iss": "https://services"});
    // alice's token exchanged for the tagger: the actor is the services'
    // tagger, which calls with its own token.
    let tagger_for_alice = || {
        w.caller(
            Some(
                w.users
                    .token("alice")
                    .scope(ALL)
                    .claim("act", act_tagger.clone()),
            ),
            Some(w.services.token("tagger").scope("tags:write")),
        )
    };
    let archiver = || {
        w.caller(
            None,
            Some(w.services.token("archiver").scope("images:read")),
        )
    };
    let admin = || {
        w.caller(
            Some(w.users.token("root").claim("roles", json!(["image-admin"]))),
            None,
        )
    };
    let weak_service = w.caller(
        Some(w.users.token("alice").scope(ALL)),
        Some(w.services.token("thumbnailer").scope("images:write")),
    );
    // alice of the other issuer, with every plain permission and the admin
    // role's name in her own `roles` claim.
    let other_alice = || {
        w.caller(
            Some(
                w.others
                    .token("alice")
                    .scope(ALL)
                    .claim("roles", json!(["image-admin"])),
            ),
            None,
        )
    };
    let tagger_chain = json!({
        "sub": "gateway",
        "iss": "https://services",
        "act": {"sub": "tagger", "iss": "https://services"},
    });
    // A delegated token whose chain names the tagger, but not as the
    // current actor, and no service token: the tagger is not calling.
    let chain_names_tagger = w.caller(
        Some(
            w.users
                .token("alice")
                .scope(ALL)
                .claim("act", tagger_chain.clone()),
        ),
        None,
    );
    // The tagger calls for alice, but the token's current actor is the gateway.
    let tagger_not_actor = w.caller(
        Some(w.users.token("alice").scope(ALL).claim("act", tagger_chain)),
        Some(w.services.token("tagger").scope("tags:write")),
    );
    // The tagger calls with a delegated token that names it as actor, but
    // the user lacks tags:write: every principal must hold it.
    let tagger_user_lacks = w.caller(
        Some(
            w.users
                .token("alice")
                .scope("images:read")
                .claim("act", act_tagger.clone()),
        ),
        Some(w.services.token("tagger").scope("tags:write")),
    );
    // A service whose `sub` is the user's, of another issuer, lacking the
    // permission (regression, SECURITY.md: Cerbos groups batch items by
    // subject id and would have answered for the user).
    let namesake_service = w.caller(
        Some(w.users.token("thumb").scope(ALL)),
        Some(w.services.token("thumb").scope("images:write")),
    );
    // A token naming its own subject as actor (`act` without `iss`: the
    // token's issuer), alone and through a service holding tags:write
    // (regression, SECURITY.md: the actor was folded into the user).
    let self_actor = || {
        w.users
            .token("alice")
            .scope(ALL)
            .claim("act", json!({"sub": "alice"}))
    };
    let self_actor_alone = w.caller(Some(self_actor()), None);
    let self_actor_through_service = w.caller(
        Some(self_actor()),
        Some(w.services.token("thumbnailer").scope("tags:write")),
    );
    // The owner through the archiver, which lacks images:read; an admin
    // through a service holding only images:write.
    let owner_through_archiver = w.caller(
        Some(w.users.token("alice").scope(ALL)),
        Some(w.services.token("archiver").scope("images:write")),
    );
    let admin_through_weak_service = w.caller(
        Some(w.users.token("root").claim("roles", json!(["image-admin"]))),
        Some(w.services.token("thumbnailer").scope("images:write")),
    );
    let owned = |id: &str, owner: &str| {
        Resource::new("Image", id).with_owner(&PrincipalId::new("https://users", owner))
    };
    let alices = || owned("img-1", "alice");
    let bobs = || owned("img-2", "bob");
    let case = |name, caller, action, resource, allowed, policy| Case {
        name,
        caller,
        action,
        resource,
        allowed,
        policy,
    };
    vec![
        case(
            "owner reads",
            alice(),
            "images:read",
            alices(),
            true,
            "owner-crud",
        ),
        case(
            "owner deletes",
            alice(),
            "images:delete",
            alices(),
            true,
            "owner-crud",
        ),
        case(
            "owner tags",
            alice(),
            "tags:write",
            alices(),
            true,
            "owner-crud",
        ),
        case(
            "other user reads",
            bob.clone(),
            "images:read",
            alices(),
            false,
            "",
        ),
        case(
            "other user deletes",
            bob,
            "images:delete",
            alices(),
            false,
            "",
        ),
        case(
            "tagger for the owner",
            tagger_for_alice(),
            "tags:write",
            alices(),
            true,
            "tagger-acts-for-owner",
        ),
        case(
            "tagger for an owner who lacks tags:write",
            tagger_user_lacks,
            "tags:write",
            alices(),
            false,
            "",
        ),
        case(
            "tagger on another user's image",
            tagger_for_alice(),
            "tags:write",
            bobs(),
            false,
            "tagger-only-for-owner",
        ),
        case(
            "tagger cannot delete",
            tagger_for_alice(),
            "images:delete",
            alices(),
            false,
            "",
        ),
        case(
            "tagger reads any",
            w.caller(None, Some(w.services.token("tagger").scope("images:read"))),
            "images:read",
            bobs(),
            true,
            "tagger-reads-any",
        ),
        case(
            "tagger, alone, writes no tags",
            w.caller(None, Some(w.services.token("tagger").scope("tags:write"))),
            "tags:write",
            bobs(),
            false,
            "",
        ),
        case(
            "archiver reads any",
            archiver(),
            "images:read",
            bobs(),
            true,
            "archiver-reads-any",
        ),
        case(
            "archiver deletes none",
            archiver(),
            "images:delete",
            bobs(),
            false,
            "archiver-deletes-none",
        ),
        case(
            "admin role reads any",
            admin(),
            "images:read",
            bobs(),
            true,
            "admins-read-any",
        ),
        case(
            "admin role deletes any",
            admin(),
            "images:delete",
            bobs(),
            true,
            "admins-delete-any",
        ),
        case(
            "another issuer's alice reads",
            other_alice(),
            "images:read",
            alices(),
            false,
            "",
        ),
        case(
            "another issuer's alice writes",
            other_alice(),
            "images:write",
            alices(),
            false,
            "",
        ),
        case(
            "another issuer's alice deletes",
            other_alice(),
            "images:delete",
            alices(),
            false,
            "",
        ),
        case(
            "another issuer's image-admin role reads any",
            other_alice(),
            "images:read",
            bobs(),
            false,
            "",
        ),
        case(
            "the chain names the tagger, no service token",
            chain_names_tagger,
            "tags:write",
            alices(),
            false,
            "",
        ),
        case(
            "the tagger calls, the current actor is another",
            tagger_not_actor,
            "tags:write",
            alices(),
            false,
            "",
        ),
        case(
            "owner through a weak service",
            weak_service,
            "images:read",
            alices(),
            false,
            "",
        ),
        case(
            "the token names its own subject as actor",
            self_actor_alone,
            "tags:write",
            alices(),
            false,
            "",
        ),
        case(
            "the token names its own subject as actor, through a service",
            self_actor_through_service,
            "tags:write",
            alices(),
            false,
            "",
        ),
        case(
            "the owner through the archiver, which lacks images:read",
            owner_through_archiver,
            "images:read",
            alices(),
            false,
            "",
        ),
        case(
            "an admin through a service lacking images:delete",
            admin_through_weak_service,
            "images:delete",
            bobs(),
            false,
            "",
        ),
        case(
            "a service named like the user, lacking the permission",
            namesake_service,
            "images:read",
            owned("img-3", "thumb"),
            false,
            "",
        ),
    ]
}

fn check(backend: &str, c: &Case, d: &PolicyDecision) {
    assert_eq!(d.is_allowed(), c.allowed, "{backend}: {}: {d:?}", c.name);
    assert!(!d.is_unavailable(), "{backend}: {}: {d:?}", c.name);
    if c.allowed && !c.policy.is_empty() {
        assert!(
            d.policies().iter().any(|p| p == c.policy),
            "{backend}: {}: {d:?}",
            c.name
        );
    }
}

#[test]
fn cedar_decides_the_table() {
    let policy = CedarPolicy::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/policies/images.cedar"
    ))
    .unwrap();
    for c in cases() {
        let d = policy.authorize(&c.caller, c.action, &c.resource);
        check("cedar", &c, &d);
        // Cedar names the forbidding policy of a denied case too.
        if !c.allowed && !c.policy.is_empty() {
            assert!(
                d.policies().iter().any(|p| p == c.policy),
                "cedar: {}: {d:?}",
                c.name
            );
        }
        assert!(d.errors().is_empty(), "cedar: {}: {d:?}", c.name);
    }
}

#[tokio::test]
async fn cerbos_decides_the_same_table_under_both_semantics() {
    let cerbos = support::Cerbos::start();
    for semantic in [Semantic::DenyOnFirstDeny, Semantic::ExecuteAll] {
        let pdp = AuthZen::builder(&cerbos.url)
            .insecure_allow_http()
            .with_semantic(semantic)
            .with_context("cerbos.includeMeta", true)
            .build()
            .unwrap();
        for c in cases() {
            let d = pdp.authorize(&c.caller, c.action, &c.resource).await;
            let backend = format!("cerbos {semantic:?}");
            check(&backend, &c, &d);
            let answered = d
                .subjects()
                .iter()
                .filter(|s| s.decision().is_some())
                .count();
            match semantic {
                // Every subject answered, allowed or not.
                Semantic::ExecuteAll => {
                    assert_eq!(answered, d.subjects().len(), "{backend}: {}: {d:?}", c.name)
                }
                // A denial may stop the evaluations; an allow has them all.
                _ if c.allowed => assert_eq!(answered, d.subjects().len()),
                _ => assert!(answered >= 1, "{backend}: {}: {d:?}", c.name),
            }
        }
    }
}

#[tokio::test]
async fn the_subjects_sent_are_each_principal_of_the_request() {
    let cerbos = support::Cerbos::start();
    let pdp = AuthZen::builder(&cerbos.url)
        .insecure_allow_http()
        .with_semantic(Semantic::ExecuteAll)
        .build()
        .unwrap();
    let w = World::new();
    let tagger_not_actor = w.caller(
        Some(
            w.users
                .token("alice")
                .scope(ALL)
                .claim("act", json!({"sub": "gateway", "iss": "https://services"})),
        ),
        Some(w.services.token("tagger").scope("tags:write")),
    );
    let image =
        Resource::new("Image", "img-1").with_owner(&PrincipalId::new("https://users", "alice"));
    let d = pdp.authorize(&tagger_not_actor, "tags:write", &image).await;
    assert!(!d.is_allowed());
    let roles: Vec<(SubjectRole, &str, Option<bool>)> = d
        .subjects()
        .iter()
        .map(|s| (s.role(), s.id().subject(), s.decision()))
        .collect();
    // The user and the service are allowed; the current actor, which did
    // not authenticate on this request, is not.
    assert_eq!(
        roles,
        [
            (SubjectRole::User, "alice", Some(true)),
            (SubjectRole::Service, "tagger", Some(true)),
            (SubjectRole::Actor, "gateway", Some(false)),
        ]
    );
}
