//! Registration: tokens and users returned, duplicates, password rules, abandoned requests.

use super::*;

#[tokio::test]
async fn register_returns_a_token_and_the_user() {
    let app = router();
    let reply = send(
        &app,
        post_json(
            "/auth/register",
            &json!({ "email": "Alice@Example.com", "password": PASSWORD, "first_name": "Alice" }),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let body = &reply.json;
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 86400);
    let user = &body["user"];
    assert!(user["id"].as_u64().is_some_and(|id| id >= 1));
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["first_name"], "Alice");
    assert_eq!(user["last_name"], Value::Null);
    assert_eq!(user["is_active"], true);
    let created = user["created_at"].as_str().expect("created_at");
    chrono::DateTime::parse_from_rfc3339(created).expect("ISO 8601 created_at");

    let token = body["access_token"].as_str().expect("token");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "HS256");

    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    let claims =
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(SECRET), &validation)
            .expect("token signed with the configured secret")
            .claims;
    assert_eq!(claims["sub"], user["id"].to_string());
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["type"], "access");
    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    assert_eq!(exp - iat, 86400);
    assert!((iat - now()).abs() <= 5);
}

#[tokio::test]
async fn ids_are_distinct() {
    let app = router();
    let a = register(&app, "a@example.com", PASSWORD).await;
    let b = register(&app, "b@example.com", PASSWORD).await;
    assert_ne!(a.json["user"]["id"], b.json["user"]["id"]);
}

#[tokio::test]
async fn duplicate_email_is_400_case_insensitively() {
    let app = router();
    assert_eq!(
        register(&app, "bob@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
    let again = register(&app, "bob@example.com", "another password").await;
    assert_detail(&again, StatusCode::BAD_REQUEST, "Email already registered");
    let upper = register(&app, "BOB@EXAMPLE.COM", PASSWORD).await;
    assert_detail(&upper, StatusCode::BAD_REQUEST, "Email already registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_of_one_email_have_one_winner() {
    // Without rate limits, so all 20 reach the store: this is the store's race test (with
    // limits, 10 would be turned away with 429 before they got there).
    let mut cfg = config();
    cfg.rate_limit.enabled = false;
    let state = AppState::new(cfg).unwrap();
    let app = app(state.clone());
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let app = app.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                register(&app, "race@example.com", &format!("password-{i}")).await
            })
        })
        .collect();
    let mut ok = 0;
    let mut taken = 0;
    for task in tasks {
        let reply = task.await.expect("task");
        match reply.status {
            StatusCode::OK => ok += 1,
            StatusCode::BAD_REQUEST => {
                assert_eq!(reply.detail(), "Email already registered");
                taken += 1;
            }
            other => panic!("unexpected {other}: {}", reply.json),
        }
    }
    assert_eq!((ok, taken), (1, 19));
    assert_eq!(state.user_count(), 1);
}

#[tokio::test]
async fn password_length_rules() {
    let app = router();
    let short = register(&app, "short@example.com", "1234567").await;
    assert_detail(
        &short,
        StatusCode::BAD_REQUEST,
        "Password must be at least 8 characters",
    );
    // Characters, not bytes: 7 two-byte characters are still too short...
    let short = register(&app, "short2@example.com", &"é".repeat(7)).await;
    assert_detail(
        &short,
        StatusCode::BAD_REQUEST,
        "Password must be at least 8 characters",
    );
    // ...and 8 of them are enough.
    assert_eq!(
        register(&app, "eight@example.com", &"é".repeat(8))
            .await
            .status,
        StatusCode::OK
    );

    let long = register(&app, "long@example.com", &"a".repeat(73)).await;
    assert_detail(
        &long,
        StatusCode::BAD_REQUEST,
        "Password must be at most 72 bytes",
    );
    // Bytes, not characters: 37 two-byte characters are 74 bytes.
    let long = register(&app, "long2@example.com", &"é".repeat(37)).await;
    assert_detail(
        &long,
        StatusCode::BAD_REQUEST,
        "Password must be at most 72 bytes",
    );
    assert_eq!(
        register(&app, "max@example.com", &"a".repeat(72))
            .await
            .status,
        StatusCode::OK
    );

    let nul = register(&app, "nul@example.com", "password\0").await;
    assert_detail(
        &nul,
        StatusCode::BAD_REQUEST,
        "Password must not contain NUL characters",
    );

    // A rejected registration stores nothing and reserves nothing.
    assert_eq!(
        register(&app, "long@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_registration_gives_its_email_back() {
    // One hashing slot, kept busy by a slow hash, so the next registration
    // is parked (email reserved) waiting for it.
    let mut cfg = config();
    cfg.cost = 13;
    cfg.hash_threads = 1;
    let app = app(AppState::new(cfg).unwrap());
    let spawn_register = |email: &'static str| {
        let app = app.clone();
        tokio::spawn(async move { register(&app, email, PASSWORD).await })
    };
    let busy = spawn_register("busy@example.com");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let abandoned = spawn_register("gone@example.com");
    tokio::time::sleep(Duration::from_millis(30)).await;

    let during = register(&app, "gone@example.com", PASSWORD).await;
    assert_detail(&during, StatusCode::BAD_REQUEST, "Email already registered");
    // The client goes away: its handler future is dropped mid-flight.
    abandoned.abort();
    assert!(abandoned.await.expect_err("still waiting").is_cancelled());
    let after = register(&app, "gone@example.com", PASSWORD).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.json);
    assert_eq!(busy.await.unwrap().status, StatusCode::OK);
}
