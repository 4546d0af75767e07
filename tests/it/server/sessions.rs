//! Over a real socket, refresh-token rotation, logout, and login rate limits.

use super::*;

/// The one test over a real socket: a server on its own thread and runtime,
/// driven with reqwest, then stopped.
#[tokio::test]
async fn spawned_server_serves_over_tcp_and_shuts_down() {
    let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = spawn(config(), any_port).expect("server starts");
    let addr = server.addr();
    assert_ne!(addr.port(), 0);
    assert_eq!(
        server.base_url(),
        format!("http://127.0.0.1:{}", addr.port())
    );

    // The port is taken now: a second server on it fails with a typed error.
    assert!(matches!(
        spawn(config(), addr),
        Err(ServerError::Bind { .. })
    ));
    assert!(matches!(
        spawn(ServerConfig::new(99, KEY), any_port),
        Err(ServerError::InvalidCost(99))
    ));

    let client = reqwest::Client::new();
    let base = server.base_url();
    let health = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let registered = client
        .post(format!("{base}/auth/register"))
        .header("x-api-key", KEY)
        .json(&json!({ "email": "tcp@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 200);
    let body: Value = registered.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let profile = client
        .get(format!("{base}/auth/profile"))
        .header("x-api-key", KEY)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(profile.status(), 200);
    let no_key = client
        .get(format!("{base}/auth/profile"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);

    // Shutdown joins the server thread (blocking), so run it off this
    // runtime; it must finish well within the grace period.
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || server.shutdown())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening"
    );

    // Inline mode runs on a current-thread runtime and serves too.
    let mut cfg = config();
    cfg.hash_mode = HashMode::Inline;
    let inline = spawn(cfg, any_port).expect("inline server starts");
    let reply = client
        .post(format!("{}/auth/register", inline.base_url()))
        .header("x-api-key", KEY)
        .json(&json!({ "email": "inline@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    tokio::task::spawn_blocking(move || drop(inline))
        .await
        .unwrap();
}

async fn login_reply(app: &Router, email: &str, password: &str) -> Reply {
    send(
        app,
        post_json(
            "/auth/login",
            &json!({ "email": email, "password": password }),
        ),
    )
    .await
}

async fn refresh(app: &Router, token: &str) -> Reply {
    send(
        app,
        post_json("/auth/refresh", &json!({ "refresh_token": token })),
    )
    .await
}

fn field(reply: &Reply, name: &str) -> String {
    reply.json[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {}", reply.json))
        .to_owned()
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_session() {
    let app = router();
    let reg = register(&app, "rita@example.com", PASSWORD).await;
    let r1 = field(&reg, "refresh_token");
    let a1 = field(&reg, "access_token");

    let next = refresh(&app, &r1).await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.json);
    let r2 = field(&next, "refresh_token");
    let a2 = field(&next, "access_token");
    assert_ne!(r1, r2);
    assert_eq!(next.json["user"]["email"], "rita@example.com");
    let ok = send(
        &app,
        get_with_token("/auth/verify", Some(&format!("Bearer {a2}"))),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);

    // A refresh token is not an access token, nor the reverse.
    let as_access = send(
        &app,
        get_with_token("/auth/verify", Some(&format!("Bearer {r2}"))),
    )
    .await;
    assert_detail(&as_access, StatusCode::UNAUTHORIZED, "Invalid token");
    assert_detail(
        &refresh(&app, &a2).await,
        StatusCode::UNAUTHORIZED,
        "Invalid token",
    );

    // Reusing the spent r1 revokes the family: r2 and both access tokens die with it.
    assert_detail(
        &refresh(&app, &r1).await,
        StatusCode::UNAUTHORIZED,
        "Invalid token",
    );
    assert_detail(
        &refresh(&app, &r2).await,
        StatusCode::UNAUTHORIZED,
        "Invalid token",
    );
    for a in [&a1, &a2] {
        let dead = send(
            &app,
            get_with_token("/auth/profile", Some(&format!("Bearer {a}"))),
        )
        .await;
        assert_detail(&dead, StatusCode::UNAUTHORIZED, "Invalid token");
    }
    // Another session of the same user is unaffected.
    let other = login_reply(&app, "rita@example.com", PASSWORD).await;
    assert_eq!(
        refresh(&app, &field(&other, "refresh_token")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = router();
    let reg = register(&app, "lou@example.com", PASSWORD).await;
    let (r, a) = (field(&reg, "refresh_token"), field(&reg, "access_token"));
    let out = send(
        &app,
        post_json("/auth/logout", &json!({ "refresh_token": r })),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.json);
    let dead = send(
        &app,
        get_with_token("/auth/verify", Some(&format!("Bearer {a}"))),
    )
    .await;
    assert_detail(&dead, StatusCode::UNAUTHORIZED, "Invalid token");
    assert_detail(
        &refresh(&app, &r).await,
        StatusCode::UNAUTHORIZED,
        "Invalid token",
    );
    // Twice is an invalid token, not a 500; so are garbage and a missing field.
    let again = send(
        &app,
        post_json("/auth/logout", &json!({ "refresh_token": r })),
    )
    .await;
    assert_detail(&again, StatusCode::UNAUTHORIZED, "Invalid token");
    let junk = send(
        &app,
        post_json("/auth/logout", &json!({ "refresh_token": "x.y.z" })),
    )
    .await;
    assert_detail(&junk, StatusCode::UNAUTHORIZED, "Invalid token");
    assert_unprocessable(&send(&app, post_json("/auth/refresh", &json!({}))).await);
}

#[tokio::test]
async fn failed_logins_per_account_are_limited_with_retry_after() {
    let app = router();
    register(&app, "eve@example.com", PASSWORD).await;
    for _ in 0..5 {
        let r = login_reply(&app, "eve@example.com", "wrong password").await;
        assert_detail(&r, StatusCode::UNAUTHORIZED, "Invalid credentials");
    }
    let limited = login_reply(&app, "EVE@example.com", PASSWORD).await;
    assert_detail(
        &limited,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts, try again later",
    );
    let retry: u64 = limited.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // An unknown email is limited the same way, so a 429 reveals nothing.
    for _ in 0..5 {
        login_reply(&app, "ghost@example.com", "wrong password").await;
    }
    let ghost = login_reply(&app, "ghost@example.com", "wrong password").await;
    assert_eq!(ghost.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(ghost.json, limited.json);
    // Other accounts are not affected.
    register(&app, "frank@example.com", PASSWORD).await;
    assert_eq!(
        login_reply(&app, "frank@example.com", PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_successful_login_clears_the_account_count_and_limits_are_configurable() {
    let app = router();
    register(&app, "gil@example.com", PASSWORD).await;
    // Many successful logins never hit the limit (a load test logs in thousands of times).
    for _ in 0..4 {
        login_reply(&app, "gil@example.com", "wrong password").await;
        assert_eq!(
            login_reply(&app, "gil@example.com", PASSWORD).await.status,
            StatusCode::OK
        );
    }
    for _ in 0..12 {
        assert_eq!(
            login_reply(&app, "gil@example.com", PASSWORD).await.status,
            StatusCode::OK
        );
    }

    let mut cfg = config();
    cfg.rate_limit.enabled = false;
    let open = app_with(cfg);
    register(&open, "hal@example.com", PASSWORD).await;
    for _ in 0..8 {
        let r = login_reply(&open, "hal@example.com", "wrong password").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
}

fn app_with(cfg: ServerConfig) -> Router {
    app(AppState::new(cfg).expect("valid config"))
}

#[test]
fn many_successful_flows_from_one_address_are_not_limited() {
    // Over a real socket, so the per-IP limit sees 127.0.0.1: 300 register+login pairs,
    // with a failure budget of 10 per IP that successes must not use up.
    let mut cfg = config();
    cfg.rate_limit.failures_per_ip = 10;
    let server = spawn(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).expect("spawn");
    let base = server.base_url();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let post = |path: &str, body: Value| {
            client
                .post(format!("{base}{path}"))
                .header("x-api-key", KEY)
                .json(&body)
                .send()
        };
        for i in 0..150 {
            let body = json!({ "email": format!("u{i}@example.com"), "password": PASSWORD });
            assert_eq!(
                post("/auth/register", body.clone()).await.unwrap().status(),
                200
            );
            assert_eq!(post("/auth/login", body).await.unwrap().status(), 200);
        }
        // Failures do count: after 10, the address is throttled, even for a new account.
        for i in 0..10 {
            let body =
                json!({ "email": format!("u{i}@example.com"), "password": "wrong password" });
            assert_eq!(post("/auth/login", body).await.unwrap().status(), 401);
        }
        let body = json!({ "email": "u100@example.com", "password": PASSWORD });
        let limited = post("/auth/login", body).await.unwrap();
        assert_eq!(limited.status(), 429);
        assert!(limited.headers().contains_key("retry-after"));
    });
    server.shutdown();
}
