//! API keys, login (indistinguishable failures), token verification and every way a token
//! can be bad.

use super::*;

#[tokio::test]
async fn api_key_is_required_on_every_auth_route() {
    let app = router();
    let token = token_for(&app, "key@example.com").await;
    let routes = [
        (Method::POST, "/auth/register"),
        (Method::POST, "/auth/login"),
        (Method::GET, "/auth/verify"),
        (Method::GET, "/auth/profile"),
        (Method::GET, "/auth/does-not-exist"),
        (Method::DELETE, "/auth/login"),
    ];
    let longer = format!("{KEY}x");
    let shorter = &KEY[..KEY.len() - 1];
    let upper = KEY.to_uppercase();
    let keys: [Option<&str>; 6] = [
        None,
        Some(""),
        Some("wrong"),
        Some(shorter),
        Some(&longer),
        Some(&upper),
    ];
    for (method, path) in &routes {
        for key in keys {
            // A body and a token that would otherwise be accepted: the key
            // check must come first.
            let mut builder = Request::builder()
                .method(method.clone())
                .uri(*path)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::AUTHORIZATION, format!("Bearer {token}"));
            if let Some(key) = key {
                builder = builder.header("x-api-key", key);
            }
            let body = json!({ "email": "key@example.com", "password": PASSWORD }).to_string();
            let reply = send(&app, builder.body(Body::from(body)).unwrap()).await;
            assert_detail(&reply, StatusCode::UNAUTHORIZED, "Invalid API key");
        }
    }
    // And the right key gets through.
    let reply = send(
        &app,
        get_with_token("/auth/profile", Some(&format!("Bearer {token}"))),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn login_works_and_failures_are_indistinguishable() {
    let app = router();
    register(&app, "carol@example.com", PASSWORD).await;

    let ok = send(
        &app,
        post_json(
            "/auth/login",
            &json!({ "email": "Carol@Example.com", "password": PASSWORD }),
        ),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);
    assert_eq!(ok.json["token_type"], "bearer");
    assert_eq!(ok.json["user"]["email"], "carol@example.com");
    let token = ok.json["access_token"].as_str().unwrap();
    let profile = send(
        &app,
        get_with_token("/auth/profile", Some(&format!("Bearer {token}"))),
    )
    .await;
    assert_eq!(profile.status, StatusCode::OK);

    let wrong_password = send(
        &app,
        post_json(
            "/auth/login",
            &json!({ "email": "carol@example.com", "password": "wrong password" }),
        ),
    )
    .await;
    let unknown_user = send(
        &app,
        post_json(
            "/auth/login",
            &json!({ "email": "nobody@example.com", "password": PASSWORD }),
        ),
    )
    .await;
    assert_detail(
        &wrong_password,
        StatusCode::UNAUTHORIZED,
        "Invalid credentials",
    );
    assert_eq!(wrong_password.status, unknown_user.status);
    assert_eq!(wrong_password.json, unknown_user.json);

    // A password with the right 72-byte prefix is not the password.
    register(&app, "dave@example.com", &"d".repeat(72)).await;
    let longer = send(
        &app,
        post_json(
            "/auth/login",
            &json!({ "email": "dave@example.com", "password": "d".repeat(80) }),
        ),
    )
    .await;
    assert_detail(&longer, StatusCode::UNAUTHORIZED, "Invalid credentials");
    let exact = send(
        &app,
        post_json(
            "/auth/login",
            &json!({ "email": "dave@example.com", "password": "d".repeat(72) }),
        ),
    )
    .await;
    assert_eq!(exact.status, StatusCode::OK);
}

#[tokio::test]
async fn verify_and_profile_accept_a_valid_token() {
    let app = router();
    let token = token_for(&app, "erin@example.com").await;
    let bearer = format!("Bearer {token}");
    let verify = send(&app, get_with_token("/auth/verify", Some(&bearer))).await;
    assert_eq!(verify.status, StatusCode::OK);
    assert_eq!(verify.json["valid"], true);
    assert_eq!(verify.json["user"]["email"], "erin@example.com");
    let profile = send(&app, get_with_token("/auth/profile", Some(&bearer))).await;
    assert_eq!(profile.status, StatusCode::OK);
    assert_eq!(profile.json["email"], "erin@example.com");
    assert_eq!(profile.json["is_active"], true);
    assert_eq!(profile.json["id"], verify.json["user"]["id"]);
    // The scheme is case-insensitive.
    let lower = send(
        &app,
        get_with_token("/auth/profile", Some(&format!("bearer {token}"))),
    )
    .await;
    assert_eq!(lower.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_tokens_are_401_with_a_bearer_challenge() {
    let app = router();
    let token = token_for(&app, "frank@example.com").await;
    let claims: Value = {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    let with = |changes: Value| {
        let mut c = claims.clone();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        b64(&claims)
    );
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let (head, rest) = token.split_once('.').unwrap();
    let swapped_payload = format!(
        "{head}.{}.{}",
        b64(&with(json!({ "sub": "999" }))),
        rest.split_once('.').unwrap().1
    );

    let cases: Vec<(String, Option<String>, &str)> = vec![
        ("no header".into(), None, "Not authenticated"),
        (
            "basic scheme".into(),
            Some("Basic dXNlcjpwYXNz".into()),
            "Not authenticated",
        ),
        (
            "token without scheme".into(),
            Some(token.clone()),
            "Not authenticated",
        ),
        (
            "empty bearer".into(),
            Some("Bearer ".into()),
            "Invalid token",
        ),
        (
            "garbage".into(),
            Some("Bearer garbage".into()),
            "Invalid token",
        ),
        (
            "three garbage parts".into(),
            Some("Bearer a.b.c".into()),
            "Invalid token",
        ),
        (
            "truncated".into(),
            Some(format!("Bearer {}", &token[..token.len() - 5])),
            "Invalid token",
        ),
        (
            "payload only".into(),
            Some(format!("Bearer {}", token.split('.').nth(1).unwrap())),
            "Invalid token",
        ),
        (
            "other secret".into(),
            Some(format!(
                "Bearer {}",
                forge(&claims, b"another-secret-entirely")
            )),
            "Invalid token",
        ),
        (
            "payload swapped".into(),
            Some(format!("Bearer {swapped_payload}")),
            "Invalid token",
        ),
        (
            "alg none".into(),
            Some(format!("Bearer {alg_none}")),
            "Invalid token",
        ),
        (
            "HS512".into(),
            Some(format!("Bearer {hs512}")),
            "Invalid token",
        ),
        (
            "expired".into(),
            Some(format!(
                "Bearer {}",
                forge(
                    &with(json!({ "iat": now() - 7200, "exp": now() - 3600 })),
                    SECRET
                )
            )),
            "Token expired",
        ),
        (
            "expired a second ago".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "exp": now() - 1 })), SECRET)
            )),
            "Token expired",
        ),
        (
            "refresh type".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "type": "refresh" })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "no type".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "type": null })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "no exp".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "exp": null })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "no iat".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "iat": null })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "no sub".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "sub": null })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "unknown user".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "sub": "999999" })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "sub not a number".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "sub": "frank" })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "numeric sub".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "sub": 1 })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "negative sub".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "sub": "-1" })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "other email".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "email": "x@example.com" })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "exp as string".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "exp": "tomorrow" })), SECRET)
            )),
            "Invalid token",
        ),
    ];
    for path in ["/auth/verify", "/auth/profile"] {
        for (name, authorization, detail) in &cases {
            let reply = send(&app, get_with_token(path, authorization.as_deref())).await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{path} {name}: {}",
                reply.json
            );
            assert_eq!(reply.detail(), *detail, "{path} {name}");
            assert_eq!(
                reply
                    .headers
                    .get(header::WWW_AUTHENTICATE)
                    .map(|v| v.as_bytes()),
                Some(&b"Bearer"[..]),
                "{path} {name}"
            );
        }
    }
    // The untouched token still works, so the cases above failed for their
    // own reason.
    let reply = send(
        &app,
        get_with_token("/auth/verify", Some(&format!("Bearer {token}"))),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn tokens_from_another_server_start_are_rejected() {
    // Default configs get a random secret each.
    let first = app(AppState::new(ServerConfig::new(4, KEY)).unwrap());
    let second = app(AppState::new(ServerConfig::new(4, KEY)).unwrap());
    let token = token_for(&first, "gina@example.com").await;
    token_for(&second, "gina@example.com").await;
    let reply = send(
        &second,
        get_with_token("/auth/profile", Some(&format!("Bearer {token}"))),
    )
    .await;
    assert_detail(&reply, StatusCode::UNAUTHORIZED, "Invalid token");
}
