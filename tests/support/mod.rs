//! Shared helpers for integration tests: servers on 127.0.0.1, example
//! binaries, and the independent token minters.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::Value;

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn http_client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn call(
    base: &str,
    client: &Client,
    method: &str,
    path: &str,
    user: Option<&str>,
    service: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = client.request(method.parse().unwrap(), format!("{base}{path}"));
    if let Some(t) = user {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(t) = service {
        req = req.header("service-authorization", format!("Bearer {t}"));
    }
    let res = req.body("some image bytes").send().await.unwrap();
    let status = res.status();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// An axum app served on 127.0.0.1 until dropped.
pub struct Server {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    pub async fn start(app: axum::Router) -> Server {
        Self::start_on("127.0.0.1:0".parse().unwrap(), app)
            .await
            .unwrap()
    }

    pub async fn start_on(addr: SocketAddr, app: axum::Router) -> std::io::Result<Server> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Ok(Server {
            addr,
            shutdown: Some(tx),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn call(
        &self,
        client: &Client,
        method: &str,
        path: &str,
        user: Option<&str>,
        service: Option<&str>,
    ) -> (StatusCode, Value) {
        call(
            &format!("http://{}", self.addr),
            client,
            method,
            path,
            user,
            service,
        )
        .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh directory under the target directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tower-mandate-{name}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The Python with PyJWT: `MANDATE_PYTHON`, else the repository's `.venv`
/// made by `scripts/test.sh`.
pub fn python(args: &[&str]) -> String {
    let python = std::env::var("MANDATE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| manifest_dir().join(".venv/bin/python"));
    let out = Command::new(&python)
        .args(args)
        .current_dir(manifest_dir())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; run scripts/test.sh (it installs PyJWT into .venv)",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// An example binary started with `BIND=127.0.0.1:0`, killed on drop.
pub struct Example {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    pub base: String,
}

impl Example {
    /// The built example binary `name`.
    pub fn binary(name: &str) -> PathBuf {
        let exe = std::env::current_exe().unwrap();
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .unwrap()
            .join("examples")
            .join(name);
        // `cargo test` builds the examples; a filtered run (`--test x`) does not.
        let fresh = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        assert!(
            bin.exists() && fresh(&bin) >= fresh(&exe).map(|t| t - Duration::from_secs(600)),
            "{} is missing or stale: run the whole `cargo test`, or `cargo build --example {name}` first",
            bin.display()
        );
        bin
    }

    /// Run an example that must refuse to start; what it wrote to stderr.
    pub fn refuses_to_start(name: &str, env: &[(&str, &str)]) -> String {
        let out = Command::new(Self::binary(name))
            .env("BIND", "127.0.0.1:0")
            .env_remove("USER_ISSUER")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name} started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub async fn spawn(name: &str, env: &[(&str, &str)]) -> Example {
        let bin = Self::binary(name);
        let mut cmd = Command::new(&bin);
        for var in [
            "USER_ISSUER",
            "USER_AUDIENCE",
            "USER_JWKS_FILE",
            "USER_JWKS_URL",
            "SERVICE_ISSUER",
            "SERVICE_AUDIENCE",
            "SERVICE_JWKS_FILE",
            "SERVICE_JWKS_URL",
            "ALGORITHMS",
            "UPSTREAM",
            "TOKEN_URL",
            "CLIENT_ID",
            "CLIENT_SECRET",
            "PROPAGATION",
            "ALLOWED_HOSTS",
            "RELAY_ISSUER",
            "RELAY_SIGNING_KEY",
            "MANDATE_CONFIG",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("BIND", "127.0.0.1:0")
            .env("KEY_COOLDOWN_SECS", "1")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let base = loop {
            let found = lines.lock().unwrap().iter().find_map(|l| {
                l.split_once("listening on ")
                    .map(|(_, url)| url.trim().to_owned())
            });
            if let Some(base) = found {
                break base;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{name} exited early: {status}");
            }
            assert!(Instant::now() < deadline, "{name} did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Example { child, lines, base }
    }

    /// The first printed line containing `text`.
    pub fn printed_containing(&self, text: &str) -> Option<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(text))
            .cloned()
    }

    /// The first printed line containing `text` once its colours are
    /// removed, waiting up to 5 s for it: the child prints its audit event
    /// around the time it answers, and its output reaches the reader
    /// thread later still.
    pub async fn printed_eventually(&self, text: &str) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .map(|l| strip_ansi(l))
                .find(|l| l.contains(text));
            if found.is_some() {
                return found;
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The rest of the first printed line starting with `prefix`.
    pub fn printed(&self, prefix: &str) -> Option<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
    }

    pub async fn call(
        &self,
        client: &Client,
        method: &str,
        path: &str,
        user: Option<&str>,
        service: Option<&str>,
    ) -> (StatusCode, Value) {
        call(&self.base, client, method, path, user, service).await
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// panva's oidc-provider (tests/support/idp), started with `node` on
/// 127.0.0.1; stopped on drop.
pub struct Idp {
    child: Child,
    pub issuer: String,
}

impl Idp {
    pub fn start() -> Idp {
        Self::start_with(&[])
    }

    /// Started with these environment variables (`IDP_DPOP_NONCE=1`: DPoP
    /// nonces required at the token endpoint).
    pub fn start_with(env: &[(&str, &str)]) -> Idp {
        let dir = manifest_dir().join("tests/support/idp");
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "oidc-provider is not installed: run scripts/test.sh (it runs npm install in {})",
            dir.display()
        );
        let node = std::env::var("MANDATE_NODE").unwrap_or_else(|_| "node".into());
        let mut child = Command::new(node)
            .arg("server.mjs")
            .current_dir(&dir)
            .env("PORT", "0")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("the test IdP did not start: {line:?}"));
        Idp {
            child,
            issuer: ready["issuer"].as_str().unwrap().to_owned(),
        }
    }

    /// A client_credentials access token (client_secret_basic).
    pub async fn client_credentials(
        &self,
        client: &Client,
        id: &str,
        secret: &str,
        scope: &str,
    ) -> String {
        let body = format!(
            "grant_type=client_credentials&scope={}&resource=urn%3Aimage-store",
            scope.replace(' ', "+").replace(':', "%3A")
        );
        let res = client
            .post(format!("{}/token", self.issuer))
            .basic_auth(id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let json: Value = res.json().await.unwrap();
        assert!(status.is_success(), "token endpoint: {status} {json}");
        json["access_token"].as_str().unwrap().to_owned()
    }

    /// Run `node <script> <args>` in the IdP's directory; its JSON output.
    pub fn node(script: &str, args: &[&str]) -> Value {
        let node = std::env::var("MANDATE_NODE").unwrap_or_else(|_| "node".into());
        let out = Command::new(node)
            .arg(script)
            .args(args)
            .current_dir(manifest_dir().join("tests/support/idp"))
            .output()
            .expect("run node");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// An access token for a user, as if they had logged in.
    pub async fn user_token(&self, client: &Client, sub: &str, aud: &str, scope: &str) -> String {
        self.user_token_query(client, &[("sub", sub), ("aud", aud), ("scope", scope)])
            .await
    }

    /// A user's access token for audience `image-store` that lives `ttl` seconds.
    pub async fn user_token_living(
        &self,
        client: &Client,
        sub: &str,
        scope: &str,
        ttl: u64,
    ) -> String {
        let ttl = ttl.to_string();
        self.user_token_query(client, &[("sub", sub), ("scope", scope), ("ttl", &ttl)])
            .await
    }

    async fn user_token_query(&self, client: &Client, query: &[(&str, &str)]) -> String {
        let json: Value = client
            .get(format!("{}/__user_token", self.issuer))
            .query(query)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        json["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn rotate(&self, client: &Client) -> Value {
        client
            .post(format!("{}/__rotate", self.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain TCP listener on 127.0.0.1 that records the head of every
/// request it receives (at most `max` connections, then it stops) and
/// answers each `200 {}`.
pub struct Sniffer {
    pub addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Sniffer {
    pub async fn start(max: usize) -> Sniffer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let sink = heads.clone();
        tokio::spawn(async move {
            for _ in 0..max {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                        match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf))
                            .await
                        {
                            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                            _ => break,
                        }
                    }
                    sink.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                        )
                        .await;
                });
            }
        });
        Sniffer { addr, heads }
    }

    /// Every request head received so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// Panics if any received request holds one of `secrets`, or a header
    /// whose name mentions authorization or token.
    pub fn assert_no_token(&self, secrets: &[&str], context: &str) {
        for head in self.heads() {
            for secret in secrets {
                assert!(
                    !head.contains(secret),
                    "{context}: a token reached the sniffer:\n{head}"
                );
            }
            for line in head.lines().skip(1) {
                let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
                assert!(
                    !name.contains("authorization") && !name.contains("token"),
                    "{context}: a token header reached the sniffer: {line}"
                );
            }
        }
    }
}

/// A private CA and a server certificate for 127.0.0.1 and localhost made
/// with rcgen, the PEM files written to `dir`.
#[allow(dead_code)]
pub struct PrivateCa {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_path: String,
    pub cert_path: String,
    pub key_path: String,
}

#[allow(dead_code)]
impl PrivateCa {
    pub fn new(dir: &Path) -> PrivateCa {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path.to_str().unwrap().to_owned()
        };
        let (ca_pem, cert_pem, key_pem) = (ca.pem(), cert.pem(), key.serialize_pem());
        PrivateCa {
            ca_path: write("ca.crt", &ca_pem),
            cert_path: write("server.crt", &cert_pem),
            key_path: write("server.key", &key_pem),
            ca_pem,
            cert_pem,
            key_pem,
        }
    }
}

#[allow(dead_code)]
pub struct Redis {
    child: Child,
    pub url: String,
}

#[allow(dead_code)]
impl Redis {
    pub fn start() -> Redis {
        let port = free_port();
        Self::spawn(
            &["--port", &port.to_string()],
            port,
            format!("redis://127.0.0.1:{port}/"),
        )
    }

    /// redis-server speaking TLS only, with a certificate from a private CA.
    pub fn start_tls(cert: &str, key: &str, ca: &str) -> Redis {
        let port = free_port();
        Self::spawn(
            &[
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--tls-cert-file",
                cert,
                "--tls-key-file",
                key,
                "--tls-ca-cert-file",
                ca,
                "--tls-auth-clients",
                "no",
            ],
            port,
            format!("rediss://127.0.0.1:{port}/"),
        )
    }

    fn spawn(args: &[&str], port: u16, url: String) -> Redis {
        let child = Command::new("redis-server")
            .args(args)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed: run scripts/test.sh (it installs Debian's redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Redis { child, url }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Cerbos policy decision point (the server binary from npm's
/// `@cerbos/cerbos-linux-x64`, installed by scripts/test.sh), serving
/// AuthZEN on its HTTP port with the policies of tests/support/cerbos;
/// stopped on drop.
pub struct Cerbos {
    child: Child,
    pub url: String,
    _dir: PathBuf,
}

#[allow(dead_code)]
impl Cerbos {
    pub fn start() -> Cerbos {
        Self::start_on(free_port())
    }

    /// On this HTTP port (a decision point that comes up after the service).
    pub fn start_on(http: u16) -> Cerbos {
        let support = manifest_dir().join("tests/support/cerbos");
        let binary = support.join("node_modules/@cerbos/cerbos-linux-x64/cerbos-linux-x64");
        assert!(
            binary.exists(),
            "the Cerbos PDP is not installed: run scripts/test.sh (it runs npm install in {})",
            support.display()
        );
        let dir = temp_dir(&format!("cerbos-{http}"));
        let grpc = free_port();
        let config = format!(
            "server:\n  httpListenAddr: \"127.0.0.1:{http}\"\n  grpcListenAddr: \"127.0.0.1:{grpc}\"\n\
             storage:\n  driver: disk\n  disk:\n    directory: {}\n    watchForChanges: false\n\
             telemetry:\n  disabled: true\n",
            support.join("policies").display()
        );
        let path = dir.join("config.yaml");
        std::fs::write(&path, config).unwrap();
        let child = Command::new(&binary)
            .arg("server")
            .arg(format!("--config={}", path.display()))
            .arg("--debug-listen-addr=127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cerbos");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", http)) {
                use std::io::{Read, Write};
                let _ =
                    stream.write_all(b"GET /_cerbos/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "cerbos did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Cerbos {
            child,
            url: format!("http://127.0.0.1:{http}"),
            _dir: dir,
        }
    }

    /// Stop it now (the decision point goes down under a running service).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Cerbos {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A trust domain for Transaction Token tests: the users' and the
/// services' issuers, and the crate's own Transaction Token Service on a
/// real server (workloads `gateway`: images:read images:write, `tagger`:
/// images:read).
pub mod txn {
    use tower_mandate::keys::Algorithm;
    use tower_mandate::mint::SigningKey;
    use tower_mandate::provider::{AccessToken, TokenFuture, TokenProvider, TokenRequest};
    use tower_mandate::testing::TestIssuer;
    use tower_mandate::transaction::{TokenService, TransactionExchange};
    use tower_mandate::{Issuer, PrincipalId, Verifier};

    use super::Server;

    pub const DOMAIN: &str = "images.example";

    /// A workload's own token, fixed.
    #[derive(Clone)]
    pub struct Own(pub String);

    impl TokenProvider for Own {
        fn token(&self, _: TokenRequest) -> TokenFuture {
            let token = AccessToken::new(self.0.clone(), std::time::Duration::from_secs(300));
            Box::pin(async move { Ok(token) })
        }
    }

    pub struct Domain {
        pub users: TestIssuer,
        pub services: TestIssuer,
        pub tts: Server,
        pub jwks: String,
    }

    pub async fn domain() -> Domain {
        let users = TestIssuer::rs256("https://id.example").with_audience("gateway");
        let services = TestIssuer::es256("https://mesh.example").with_audience("tts");
        let service = TokenService::builder(
            DOMAIN,
            SigningKey::generate(Algorithm::ES256, "tts-1"),
            Verifier::new([Issuer::new(users.issuer(), "gateway").with_keys(users.key_set())])
                .unwrap(),
            Verifier::new([Issuer::new(services.issuer(), "tts").with_keys(services.key_set())])
                .unwrap(),
        )
        .allow(
            PrincipalId::new(services.issuer(), "gateway"),
            ["images:read", "images:write"],
        )
        .allow(
            PrincipalId::new(services.issuer(), "tagger"),
            ["images:read"],
        )
        .build()
        .unwrap();
        let jwks = service.jwks();
        let tts = Server::start(service.router()).await;
        Domain {
            users,
            services,
            tts,
            jwks,
        }
    }

    /// The exchange of `workload`, authenticated with its own token.
    pub fn exchange(d: &Domain, workload: &str) -> TransactionExchange {
        TransactionExchange::new(
            d.tts.url("/token"),
            DOMAIN,
            Own(d.services.token(workload).audience("tts").sign()),
            TokenRequest::default(),
        )
        .insecure_allow_http()
    }
}

/// `line` without its ANSI colour sequences (tracing's fmt layer colours
/// field names when it thinks it writes to a terminal).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Two users' issuers (`https://users`, `https://users-b`) in one user
/// verifier and a services' issuer (`https://services`) in another, all
/// for audience `a`: the principals of the policy tests.
pub struct World {
    pub users: tower_mandate::testing::TestIssuer,
    /// A second users' issuer trusted by the same slot.
    pub others: tower_mandate::testing::TestIssuer,
    pub services: tower_mandate::testing::TestIssuer,
    pub uv: tower_mandate::Verifier,
    pub sv: tower_mandate::Verifier,
}

impl World {
    pub fn new() -> Self {
        use tower_mandate::testing::TestIssuer;
        use tower_mandate::{Issuer, Verifier};
        let users = TestIssuer::es256("https://users").with_audience("a");
        let others = TestIssuer::es256("https://users-b").with_audience("a");
        let services = TestIssuer::es256("https://services").with_audience("a");
        let uv = Verifier::new([
            Issuer::new("https://users", "a").with_keys(users.key_set()),
            Issuer::new("https://users-b", "a").with_keys(others.key_set()),
        ])
        .unwrap();
        let sv =
            Verifier::new([Issuer::new("https://services", "a").with_keys(services.key_set())])
                .unwrap();
        World {
            users,
            others,
            services,
            uv,
            sv,
        }
    }

    /// A request with these tokens, verified.
    pub fn caller(
        &self,
        user: Option<tower_mandate::testing::TokenBuilder>,
        service: Option<tower_mandate::testing::TokenBuilder>,
    ) -> tower_mandate::Caller {
        tower_mandate::Caller::new(
            user.map(|t| self.uv.verify(&t.sign()).unwrap()),
            service.map(|t| self.sv.verify(&t.sign()).unwrap()),
        )
    }
}
