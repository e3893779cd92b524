use super::*;
use crate::testing::TestIssuer;

fn err(text: &str) -> String {
    MandateConfig::from_toml(text).unwrap_err().to_string()
}

#[test]
fn unknown_keys_and_wrong_types_name_the_key() {
    let e = err("[user]\nmod = \"required\"\nissuers = []");
    assert!(
        e.starts_with("user.mod: unknown field `mod`, expected one of `mode`"),
        "{e}"
    );
    assert!(e.ends_with("(line 2)"), "{e}");
    let e = err("[[user.issuers]]\nissuer = 1\naudiences = []");
    assert!(e.starts_with("user.issuers[0].issuer: "), "{e}");
    let e = err("[[user.issuers]]\nissuer = \"https://a\"\naudiences = [\"a\"]\nleeway = \"soon\"");
    assert!(e.starts_with("user.issuers[0].leeway: "), "{e}");
    let e = err(
        "[[user.issuers]]\nissuer = \"https://a\"\naudiences = [\"a\"]\nalgorithms = [\"XS256\"]",
    );
    assert!(
        e.starts_with("user.issuers[0].algorithms[0]: unknown algorithm \"XS256\""),
        "{e}"
    );
    let e = err("[user]\nmode = \"sometimes\"\nissuers = []");
    assert!(
        e.starts_with("user.mode: unknown variant `sometimes`"),
        "{e}"
    );
}

#[test]
fn build_errors_name_the_key_and_quote_the_value() {
    let idp = TestIssuer::rs256("https://a");
    let dir = std::env::temp_dir().join(format!("mandate-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, idp.jwks()).unwrap();
    let issuer = |extra: &str| {
        format!(
            "[[user.issuers]]\nissuer = \"https://a\"\naudiences = [\"a\"]\njwks_file = {:?}\n\
             [[user.issuers]]\nissuer = \"https://b\"\naudiences = [\"b\"]\n{extra}",
            jwks.display().to_string()
        )
    };
    let build = |text: &str| MandateConfig::from_toml(text).unwrap().layer().map(|_| ());
    let e = build(&issuer("jwks_url = \"htp:/x\""))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("user.issuers[1].jwks_url: invalid URL \"htp:/x\""),
        "{e}"
    );
    let e = build(&issuer("jwks_url = \"https://b/jwks\"\ndiscovery = true"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("user.issuers[1]: exactly one of jwks_file, jwks_url, discovery"),
        "{e}"
    );
    let e = build(&issuer("")).unwrap_err().to_string();
    assert!(e.starts_with("user.issuers[1]: exactly one of"), "{e}");
    let e = build(&issuer("jwks_file = \"/nonexistent/jwks.json\""))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("user.issuers[1].jwks_file: cannot read /nonexistent/jwks.json"),
        "{e}"
    );
    // One good issuer builds.
    let text = format!(
        "[user]\nmode = \"optional\"\n[[user.issuers]]\nissuer = \"https://a\"\naudiences = [\"a\"]\njwks_file = {:?}\n",
        jwks.display().to_string()
    );
    assert!(build(&text).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn secrets_come_from_the_environment_or_a_file_and_never_print() {
    let text = "[providers.idp]\nkind = \"client_credentials\"\ntoken_url = \"https://idp/token\"\n\
                client_id = \"relay\"\nclient_secret_env = \"MANDATE_TEST_UNSET_SECRET\"\n";
    let config = MandateConfig::from_toml(text).unwrap();
    let e = config.providers().unwrap_err().to_string();
    assert!(
        e.starts_with("providers.idp.client_secret_env: the environment variable"),
        "{e}"
    );
    let inline = MandateConfig::from_toml(
        "[providers.idp]\nkind = \"client_credentials\"\ntoken_url = \"https://idp/token\"\n\
         client_id = \"relay\"\nclient_secret = \"hunter2\"\n",
    )
    .unwrap();
    let e = inline.providers().unwrap_err().to_string();
    assert!(
        e.starts_with("providers.idp.client_secret: secrets are never inline"),
        "{e}"
    );
    assert!(!format!("{inline:?}").contains("hunter2"));
    let empty = MandateConfig::from_toml(
        "[providers.idp]\nkind = \"client_credentials\"\ntoken_url = \"https://idp/token\"\n\
         client_id = \"relay\"\nclient_secret_file = \"/dev/null\"\n",
    )
    .unwrap();
    let e = empty.providers().unwrap_err().to_string();
    assert!(
        e.starts_with("providers.idp.client_secret_file: the secret is empty"),
        "{e}"
    );
    let dir = std::env::temp_dir().join(format!("mandate-config-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    std::fs::write(&file, "s3cret\n").unwrap();
    let bad_url = MandateConfig::from_toml(&format!(
        "[providers.idp]\nkind = \"client_credentials\"\ntoken_url = \"http://idp/token\"\n\
         client_id = \"relay\"\nclient_secret_file = {:?}\n",
        file.to_str().unwrap()
    ))
    .unwrap();
    let e = bad_url.providers().unwrap_err().to_string();
    assert!(
        e.starts_with("providers.idp.token_url: invalid URL \"http://idp/token\": not https"),
        "{e}"
    );
}

#[test]
fn destinations_refer_to_providers_by_name() {
    let config = MandateConfig::from_toml(
        "[[propagate.destinations]]\nhost = \"images.internal\"\n\
         service_token = { provider = \"me\", audience = \"image-store\" }\n",
    )
    .unwrap();
    let e = config
        .propagate_layer(&config.providers().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("propagate.destinations[0].service_token.provider: no provider named \"me\""),
        "{e}"
    );
    let config = MandateConfig::from_toml(
        "[[propagate.destinations]]\nhost = \"127.0.0.1\"\ninsecure_http = true\n",
    )
    .unwrap();
    let e = config
        .propagate_layer(&Providers::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("propagate.destinations[0].port: insecure_http needs a port"),
        "{e}"
    );
}

#[test]
fn skip_rules_from_the_file() {
    let config = MandateConfig::from_toml(
        "[skip]\npath_prefixes = [\"/public/\"]\ngrpc_health = true\ncors_preflight = true\n",
    )
    .unwrap();
    assert_eq!(config.skip.path_prefixes, ["/public/"]);
    assert!(config.skip.grpc_health && config.skip.cors_preflight && !config.skip.grpc_reflection);
    let e = err("[skip]\ngrpc_healt = true\n");
    assert!(e.starts_with("skip.grpc_healt: unknown field"), "{e}");
}

#[test]
fn redis_credentials_are_never_inline() {
    let inline = MandateConfig::from_toml(
        "[revocation]\nstore = \"redis\"\nurl = \"rediss://:hunter2@redis.internal:6380/\"\n",
    )
    .unwrap();
    assert!(!format!("{inline:?}").contains("hunter2"));
    let e = inline.layer().unwrap_err().to_string();
    assert!(
        e.starts_with("revocation.url: credentials are never inline"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
    #[cfg(feature = "redis")]
    {
        let dir = std::env::temp_dir().join(format!("mandate-redis-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "p@ss word\n").unwrap();
        let from_file = MandateConfig::from_toml(&format!(
            "[revocation]\nstore = \"redis\"\nurl = \"redis://127.0.0.1:6379/\"\npassword_file = {:?}\n",
            file.to_str().unwrap()
        ))
        .unwrap();
        assert!(
            from_file.layer().is_ok(),
            "the password is read and encoded into the URL"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn dpop_and_certificate_settings_build_or_name_their_key() {
    let idp = TestIssuer::es256("https://a");
    let dir = std::env::temp_dir().join(format!("mandate-config-dpop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, idp.jwks()).unwrap();
    let slot = |extra: &str| {
        format!(
            "[user]\n{extra}\n[[user.issuers]]\nissuer = \"https://a\"\naudiences = [\"a\"]\njwks_file = {:?}\n",
            jwks.display().to_string()
        )
    };
    let build = |text: &str| {
        MandateConfig::from_toml(text)
            .map_err(|e| e.to_string())?
            .layer()
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        build(&slot(
            "dpop = \"allowed\"\ndpop_origins = [\"https://images.example\"]\ndpop_max_age = \"30s\""
        )),
        Ok(())
    );
    assert_eq!(
        build(&slot(
            "dpop = \"required\"\ndpop_origins = [\"https://images.example\"]\ndpop_algorithms = [\"ES256\"]\ncertificate_bound = true"
        )),
        Ok(())
    );
    let e = build(&slot("dpop = \"allowed\"")).unwrap_err();
    assert!(e.starts_with("user.dpop_origins: "), "{e}");
    let e = build(&slot("dpop_max_age = \"30s\"")).unwrap_err();
    assert!(e.starts_with("user.dpop_max_age: applies with dpop"), "{e}");
    let e = build(&slot("dpop = \"sometimes\"")).unwrap_err();
    assert!(
        e.starts_with("user.dpop: unknown variant `sometimes`"),
        "{e}"
    );
    let e = build(&slot(
        "dpop = \"allowed\"\ndpop_origins = [\"https://images.example\"]\ndpop_algorithms = [\"HS256\"]",
    ))
    .unwrap_err();
    assert!(e.starts_with("user.dpop_algorithms: "), "{e}");
    assert!(e.contains("HS256 cannot sign DPoP proofs"), "{e}");
    let e = build(&slot(
        "dpop = \"allowed\"\ndpop_origins = [\"https://images.example/api\"]",
    ))
    .unwrap_err();
    assert!(e.starts_with("user.dpop_origins: "), "{e}");
    assert!(e.contains("is not scheme://host[:port]"), "{e}");
    let e = build(&slot(
        "dpop = \"allowed\"\ndpop_origins = [\"https://i.example\"]\ndpop_nonce_secret_env = \"MANDATE_TEST_UNSET_SECRET\"",
    ))
    .unwrap_err();
    assert!(e.starts_with("user.dpop_nonce_secret_env: "), "{e}");
    let secret = dir.join("nonce.secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
    assert_eq!(
        build(&slot(&format!(
            "dpop = \"allowed\"\ndpop_origins = [\"https://i.example\"]\ndpop_nonce_secret_file = {:?}\ndpop_nonce_rotation = \"1m\"",
            secret.display().to_string()
        ))),
        Ok(())
    );
    // A file too short is named as the file.
    let short = dir.join("short.secret");
    std::fs::write(&short, "short\n").unwrap();
    let e = build(&slot(&format!(
        "dpop = \"allowed\"\ndpop_origins = [\"https://i.example\"]\ndpop_nonce_secret_file = {:?}",
        short.display().to_string()
    )))
    .unwrap_err();
    assert!(e.starts_with("user.dpop_nonce_secret_file: "), "{e}");
    // Where certificates come from.
    let certs = |table: &str| format!("{}\n[client_certificates]\n{table}\n", slot(""));
    assert_eq!(build(&certs("source = \"envoy_xfcc\"")), Ok(()));
    assert_eq!(
        build(&certs(
            "source = \"pem_header\"\nheader = \"x-client-cert\""
        )),
        Ok(())
    );
    let e = build(&certs("source = \"pem_header\"")).unwrap_err();
    assert!(e.starts_with("client_certificates.header: "), "{e}");
    let e = build(&certs("source = \"connection\"\nheader = \"x\"")).unwrap_err();
    assert!(
        e.starts_with("client_certificates.header: applies to"),
        "{e}"
    );
}

#[cfg(feature = "authzen")]
#[test]
fn the_policy_table_builds_a_decision_point_or_names_its_key() {
    let providers = Providers::default();
    let config = MandateConfig::from_toml(
        "[policy]\nauthzen_url = \"https://pdp.internal\"\ntimeout = \"2s\"\n\
         semantic = \"execute_all\"\ncache_ttl = \"5s\"\n[policy.context]\n\"cerbos.includeMeta\" = true\n\
         [policy.action_scopes]\nread = \"images:read\"\n",
    )
    .unwrap();
    let scopes = &config.policy.as_ref().unwrap().action_scopes;
    assert_eq!(scopes.get("read").map(String::as_str), Some("images:read"));
    let pdp = config.authzen(&providers).unwrap().unwrap();
    assert!(format!("{pdp:?}").contains("ExecuteAll"), "{pdp:?}");
    assert!(
        MandateConfig::from_toml("")
            .unwrap()
            .authzen(&providers)
            .unwrap()
            .is_none()
    );
    for (text, expected) in [
        (
            "[policy]\nauthzen_url = \"http://pdp.internal\"",
            "policy.authzen_url: ",
        ),
        (
            "[policy]\nauthzen_url = \"https://p\"\ntimeout = \"0s\"",
            "policy.timeout: ",
        ),
        (
            "[policy]\nauthzen_url = \"https://p\"\ntoken_provider = \"nope\"",
            "policy.token_provider: ",
        ),
        (
            "[policy]\nauthzen_url = \"https://p\"\ncache_capacity = 5",
            "policy.cache_capacity: ",
        ),
        (
            "[policy]\nauthzen_url = \"https://p\"\nsemantic = \"permit_on_first_permit\"",
            "policy.semantic: ",
        ),
        ("[policy]\nurl = \"https://p\"", "policy.url: "),
        (
            "[policy]\nauthzen_url = \"https://p\"\n[policy.action_scopes]\nread = \"images:read images:write\"",
            "policy.action_scopes.read: one scope",
        ),
        (
            "[policy]\nauthzen_url = \"https://p\"\n[policy.action_scopes]\nread = \"\"",
            "policy.action_scopes.read: one scope",
        ),
    ] {
        let result = MandateConfig::from_toml(text).and_then(|c| c.authzen(&providers).map(|_| ()));
        let e = result.unwrap_err().to_string();
        assert!(e.starts_with(expected), "{text}: {e}");
    }
}

#[cfg(all(feature = "oauth", feature = "_aws-lc"))]
#[test]
fn job_tables_build_a_delegation_or_name_their_key() {
    use base64::Engine as _;
    let dir = std::env::temp_dir().join(format!("mandate-config-jobs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let b64 = |byte: u8| base64::engine::general_purpose::STANDARD.encode([byte; 32]);
    let now = write("now.key", &format!("{}\n", b64(1)));
    let before = write("before.key", &b64(2));
    let short = write("short.key", "AAAA");
    let secret = write("secret", "tagger-secret\n");
    let pem = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem();
    let assertion = write("assertion.pem", &pem);
    let providers = format!(
        "[providers.tagger]\nkind = \"client_credentials\"\ntoken_url = \"https://id.example/token\"\n\
         client_id = \"tagger\"\nclient_secret_file = {secret:?}\n\
         [providers.me]\nkind = \"self_signed\"\nissuer = \"https://me\"\nprivate_key_file = {assertion:?}\n"
    );
    let job = |grant: &str, rest: &str| {
        format!(
            "{providers}[jobs.t]\ngrant = \"{grant}\"\nclient = \"tagger\"\nissuer = \"https://id.example\"\n{rest}"
        )
    };
    let key = format!("sealing_key = {{ id = \"2026-12\", file = {now:?} }}\n");
    let build = |text: &str| {
        MandateConfig::from_toml(text).and_then(|c| c.delegation("t").map(|b| b.build()))
    };

    // What builds, and what it built.
    let refresh = build(&format!(
        "{}previous_sealing_keys = [{{ id = \"2026-11\", file = {before:?} }}]\nmax_lifetime = \"1d\"\n",
        job("refresh_token", &key)
    ))
    .unwrap();
    let debug = format!("{refresh:?}");
    assert!(debug.contains("refresh_token"), "{debug}");
    assert!(
        !debug.contains("tagger-secret") && !debug.contains(&b64(1)),
        "{debug}"
    );
    let jwt = build(&job(
        "jwt_bearer",
        &format!("{key}assertion_key = {{ file = {assertion:?}, id = \"tagger-1\" }}\n"),
    ))
    .unwrap();
    assert!(format!("{jwt:?}").contains("jwt_bearer"), "{jwt:?}");
    // A memory store is the application's to pass: refused unless opted out.
    let memory_off = build(&format!(
        "{}revocation = false\n[revocation]\nstore = \"memory\"\n",
        job("refresh_token", &key)
    ))
    .unwrap();
    assert!(format!("{memory_off:?}").contains("revocation: false"));
    #[cfg(feature = "redis")]
    {
        let checked = build(&format!(
            "{}max_lifetime = \"1h\"\nrevocation = true\n[revocation]\nstore = \"redis\"\nurl = \"redis://127.0.0.1:1\"\n",
            job("refresh_token", &key)
        ))
        .unwrap();
        let debug = format!("{checked:?}");
        assert!(debug.contains("revocation: true"), "{debug}");
        assert!(debug.contains("max_lifetime: 3600s"), "{debug}");
        // With a redis [revocation] table, a job checks it unless told not to.
        let redis = "[revocation]\nstore = \"redis\"\nurl = \"redis://127.0.0.1:1\"\n";
        let by_default = build(&format!("{}{redis}", job("refresh_token", &key))).unwrap();
        assert!(format!("{by_default:?}").contains("revocation: true"));
        let off = build(&format!(
            "{}revocation = false\n{redis}",
            job("refresh_token", &key)
        ))
        .unwrap();
        assert!(format!("{off:?}").contains("revocation: false"));
        assert!(format!("{refresh:?}").contains("revocation: false"));
    }

    for (text, expected) in [
        (
            job("refresh_token", &key),
            "jobs.other: no delegation named \"other\"",
        ),
        (
            job("refresh_token", &key).replace("client = \"tagger\"", "client = \"nobody\""),
            "jobs.t.client: no provider named \"nobody\" in [providers]",
        ),
        (
            job("refresh_token", &key).replace("client = \"tagger\"", "client = \"me\""),
            "providers.me.kind: a self_signed provider has no token endpoint",
        ),
        (
            job("refresh_token", &key).replace("issuer = \"https://id.example\"", "issuer = \"\""),
            "jobs.t.issuer: must not be empty",
        ),
        (
            job("jwt_bearer", &key),
            "jobs.t.assertion_key: grant = \"jwt_bearer\" needs an assertion_key",
        ),
        (
            job(
                "refresh_token",
                &format!("{key}assertion_key = {{ file = {assertion:?} }}\n"),
            ),
            "jobs.t.assertion_key: applies to grant = \"jwt_bearer\" only",
        ),
        (
            job(
                "jwt_bearer",
                &format!("{key}assertion_key = {{ file = \"/nonexistent.pem\" }}\n"),
            ),
            "jobs.t.assertion_key.file: ",
        ),
        (
            job("refresh_token", "sealing_key = { id = \"k\" }\n"),
            "jobs.t.sealing_key: exactly one of env, file is needed",
        ),
        (
            job(
                "refresh_token",
                "sealing_key = { id = \"k\", env = \"MANDATE_TEST_UNSET_JOB_KEY\" }\n",
            ),
            "jobs.t.sealing_key.env: the environment variable \"MANDATE_TEST_UNSET_JOB_KEY\" is not set",
        ),
        (
            job(
                "refresh_token",
                &format!("sealing_key = {{ id = \"k\", env = \"X\", file = {now:?} }}\n"),
            ),
            "jobs.t.sealing_key: at most one of env, file",
        ),
        (
            job(
                "refresh_token",
                &format!("sealing_key = {{ id = \"k\", file = {short:?} }}\n"),
            ),
            "jobs.t.sealing_key: invalid key \"k\": a sealing key of 3 bytes, expected 32",
        ),
        (
            job(
                "refresh_token",
                &format!(
                    "{key}previous_sealing_keys = [{{ id = \"2026-12\", file = {before:?} }}]\n"
                ),
            ),
            "jobs.t.previous_sealing_keys[0]: invalid key \"2026-12\": a sealing key id given twice",
        ),
        (
            job(
                "refresh_token",
                "sealing_key = { id = \"k\", secret = \"AAAA\" }\n",
            ),
            "jobs.t.sealing_key.secret: unknown field `secret`",
        ),
        (
            job("refresh_token", &format!("{key}max_lifetime = \"0s\"\n")),
            "jobs.t.max_lifetime: must not be zero",
        ),
        (
            job("refresh_token", &format!("{key}revocation = true\n")),
            "jobs.t.revocation: needs a [revocation] table",
        ),
        (
            format!(
                "{}[revocation]\nstore = \"memory\"\n",
                job("refresh_token", &format!("{key}revocation = true\n"))
            ),
            "jobs.t.revocation: a memory store is this process's own",
        ),
        (
            format!(
                "{}[revocation]\nstore = \"memory\"\n",
                job("refresh_token", &key)
            ),
            "jobs.t.revocation: a memory store is this process's own",
        ),
        (
            job("transaction", &key),
            "jobs.t.grant: unknown variant `transaction`",
        ),
    ] {
        let name = if expected.starts_with("jobs.other") {
            "other"
        } else {
            "t"
        };
        let e = MandateConfig::from_toml(&text)
            .and_then(|c| c.delegation(name).map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(expected), "{text}\n{e}");
        assert!(!e.contains("tagger-secret") && !e.contains(&b64(1)), "{e}");
    }
}
