//! Client input the server must refuse cleanly: malformed bodies, missing or mistyped fields,
//! content types, sizes, odd inputs (never a 5xx), unknown routes, invalid configurations.

use super::*;

#[tokio::test]
async fn malformed_bodies_are_422() {
    let app = router();
    for body in [
        "{",
        "{\"email\": \"a@example.com\", \"password\": }",
        "not json",
        "{\"email\": \"a@example.com\" \"password\": \"x\"}",
        "\u{FEFF}{}",
    ] {
        let reply = send(&app, post_raw("/auth/register", body)).await;
        assert_unprocessable(&reply);
        assert!(
            reply.detail().starts_with("Malformed JSON"),
            "{body}: {}",
            reply.json
        );
    }
    // Not UTF-8.
    let reply = send(
        &app,
        post_raw("/auth/register", vec![b'{', 0xff, 0xfe, b'}']),
    )
    .await;
    assert_unprocessable(&reply);
    // Empty and non-object bodies.
    assert_detail(
        &send(&app, post_raw("/auth/register", "")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Request body is empty",
    );
    for body in ["[]", "\"a@example.com\"", "42", "null", "true"] {
        assert_detail(
            &send(&app, post_raw("/auth/login", body)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Request body must be a JSON object",
        );
    }
}

#[tokio::test]
async fn missing_fields_are_422_naming_the_field() {
    let app = router();
    let reply = send(
        &app,
        post_json("/auth/register", &json!({ "email": "a@example.com" })),
    )
    .await;
    assert_detail(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Missing field: password",
    );
    let reply = send(
        &app,
        post_json("/auth/register", &json!({ "password": PASSWORD })),
    )
    .await;
    assert_detail(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Missing field: email",
    );
    let reply = send(&app, post_json("/auth/login", &json!({}))).await;
    assert_detail(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Missing field: email",
    );
    let reply = send(
        &app,
        post_json(
            "/auth/register",
            &json!({ "email": null, "password": PASSWORD }),
        ),
    )
    .await;
    assert_detail(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Missing field: email",
    );
}

#[tokio::test]
async fn wrong_field_types_are_422() {
    let app = router();
    let cases = [
        (
            json!({ "email": 42, "password": PASSWORD }),
            "Field 'email' must be a string",
        ),
        (
            json!({ "email": "a@example.com", "password": 12345678 }),
            "Field 'password' must be a string",
        ),
        (
            json!({ "email": ["a@example.com"], "password": PASSWORD }),
            "Field 'email' must be a string",
        ),
        (
            json!({ "email": "a@example.com", "password": PASSWORD, "first_name": {"x": 1} }),
            "Field 'first_name' must be a string or null",
        ),
        (
            json!({ "email": "a@example.com", "password": PASSWORD, "last_name": false }),
            "Field 'last_name' must be a string or null",
        ),
    ];
    for (body, detail) in cases {
        let reply = send(&app, post_json("/auth/register", &body)).await;
        assert_detail(&reply, StatusCode::UNPROCESSABLE_ENTITY, detail);
    }
    let reply = send(
        &app,
        post_json(
            "/auth/login",
            &json!({ "email": "a@example.com", "password": true }),
        ),
    )
    .await;
    assert_detail(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Field 'password' must be a string",
    );
}

#[tokio::test]
async fn bad_emails_are_422() {
    let app = router();
    let too_long = format!("{}@example.com", "a".repeat(250));
    let bad = [
        "",
        "plain",
        "no-dot@localhost",
        "@example.com",
        "two@@example.com",
        "a@b@example.com",
        "a@.example.com",
        "a@example..com",
        "a@example.com.",
        "with space@example.com",
        "tab\t@example.com",
        " lead@example.com",
        "ctrl\u{7}@example.com",
        too_long.as_str(),
    ];
    for email in bad {
        let reply = register(&app, email, PASSWORD).await;
        assert_unprocessable(&reply);
        assert!(
            reply.detail().starts_with("Invalid email"),
            "{email:?}: {}",
            reply.json
        );
    }
    // Email problems are reported before password problems.
    assert_unprocessable(&register(&app, "bad", "short").await);
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = router();
    let body = json!({ "email": "ct@example.com", "password": PASSWORD }).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        Some("json"),
    ] {
        let reply = send(
            &app,
            request(
                Method::POST,
                "/auth/register",
                Some(KEY),
                content_type,
                body.clone(),
            ),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert!(reply.json["detail"].is_string(), "{content_type:?}");
    }
    // Parameters and case do not matter, and +json types are JSON.
    for (i, content_type) in [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.api+json",
    ]
    .into_iter()
    .enumerate()
    {
        let body =
            json!({ "email": format!("ct{i}@example.com"), "password": PASSWORD }).to_string();
        let reply = send(
            &app,
            request(
                Method::POST,
                "/auth/register",
                Some(KEY),
                Some(content_type),
                body,
            ),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{content_type}: {}",
            reply.json
        );
    }
}

#[tokio::test]
async fn huge_body_is_413() {
    let app = router();
    let huge = format!(
        "{{\"email\": \"big@example.com\", \"password\": \"{}\"}}",
        "a".repeat(70 * 1024)
    );
    // Without Content-Length: caught while reading.
    let reply = send(&app, post_raw("/auth/register", huge.clone())).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.json["detail"].is_string());
    // With Content-Length: caught before reading.
    let mut req = post_raw("/auth/login", huge.clone());
    req.headers_mut().insert(
        header::CONTENT_LENGTH,
        huge.len().to_string().parse().unwrap(),
    );
    let reply = send(&app, req).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.json["detail"].is_string());
    // Just under the limit is read (and then rejected for what it is).
    let padded = format!(
        "{{\"email\": \"big@example.com\", \"password\": \"{PASSWORD}\", \"pad\": \"{}\"}}",
        "a".repeat(60 * 1024)
    );
    assert_eq!(
        send(&app, post_raw("/auth/register", padded)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn health_needs_no_key() {
    let app = router();
    let reply = send(
        &app,
        request(Method::GET, "/health", None, None, Body::empty()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json["status"], "healthy");
    assert_eq!(reply.json["service"], "authbench-reference");
    assert_eq!(reply.json["components"]["user_store"], "healthy");
    assert_eq!(reply.json["components"]["hashing"], "healthy");
    assert_eq!(reply.json["bcrypt_cost"], 4);
    assert_eq!(reply.json["hash_mode"], "pool");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json() {
    let app = router();
    let reply = send(
        &app,
        request(Method::GET, "/nope", None, None, Body::empty()),
    )
    .await;
    assert_detail(&reply, StatusCode::NOT_FOUND, "Not Found");
    let reply = send(
        &app,
        request(Method::GET, "/auth/nope", Some(KEY), None, Body::empty()),
    )
    .await;
    assert_detail(&reply, StatusCode::NOT_FOUND, "Not Found");
    let reply = send(
        &app,
        request(Method::POST, "/health", None, None, Body::empty()),
    )
    .await;
    assert_detail(&reply, StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    let reply = send(
        &app,
        request(Method::GET, "/auth/login", Some(KEY), None, Body::empty()),
    )
    .await;
    assert_detail(&reply, StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    assert_eq!(
        reply.headers.get(header::ALLOW).map(|v| v.as_bytes()),
        Some(&b"POST"[..])
    );
    let reply = send(
        &app,
        request(Method::POST, "/auth/verify", Some(KEY), None, Body::empty()),
    )
    .await;
    assert_detail(&reply, StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
}

#[tokio::test]
async fn inline_mode_serves_the_same_api() {
    let mut cfg = config();
    cfg.hash_mode = HashMode::Inline;
    let app = app(AppState::new(cfg).unwrap());
    let token = token_for(&app, "inline@example.com").await;
    let login = send(
        &app,
        post_json(
            "/auth/login",
            &json!({ "email": "inline@example.com", "password": PASSWORD }),
        ),
    )
    .await;
    assert_eq!(login.status, StatusCode::OK);
    let reply = send(
        &app,
        get_with_token("/auth/verify", Some(&format!("Bearer {token}"))),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn odd_inputs_never_give_a_5xx() {
    let app = router();
    let token = token_for(&app, "odd@example.com").await;
    let long_header = format!("Bearer {}", "a".repeat(8000));
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!("{{\"email\": {}1{}}}", "[".repeat(200), "]".repeat(200));
    let bodies: Vec<String> = vec![
        String::new(),
        "{}".into(),
        "null".into(),
        deep,
        deep_object,
        "{\"email\": \"a@example.com\", \"password\": \"\\ud800\\udc00xxxxxxx\"}".into(),
        "{\"email\": \"a@example.com\", \"password\": \"\\ud800xxxxxxxxxx\"}".into(),
        "{\"email\": \"\\u0000@example.com\", \"password\": \"xxxxxxxxxx\"}".into(),
        "{\"email\": \"a@example.com\", \"password\": \"\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\"}".into(),
        "{\"email\": \"a@example.com\", \"password\": \"xxxxxxxxxx\", \"email\": \"b@example.com\"}".into(),
        "{\"email\": \"ü@exämple.com\", \"password\": \"pässwörd-ok\"}".into(),
        "{\"email\": \"a@example.com\", \"password\": 1e999}".into(),
        "{\"email\": \"a@example.com\", \"password\": 18446744073709551616}".into(),
        format!("{{\"email\": \"{}@example.com\", \"password\": \"xxxxxxxxxx\"}}", "é".repeat(200)),
        json!({ "email": "odd@example.com", "password": "" }).to_string(),
        json!({ "email": "odd@example.com", "password": "x".repeat(10_000) }).to_string(),
        json!({ "email": "İ@EXAMPLE.COM", "password": PASSWORD }).to_string(),
    ];
    let mut requests = Vec::new();
    for body in &bodies {
        for path in ["/auth/register", "/auth/login"] {
            requests.push(post_raw(path, body.clone()));
        }
    }
    for authorization in [
        "Bearer",
        "Bearer  ",
        "Bearer . .",
        "Bearer ..",
        "Bearer a.b",
        "Bearer a.b.c.d",
        "Bearer ====.====.====",
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.",
        "Bearer eyJhbGciOiJIUzI1NiJ9.bnVsbA.x",
        "Bearer eyJ9.eyJ9.eyJ9",
        long_header.as_str(),
        "\u{7f}",
    ] {
        for path in ["/auth/verify", "/auth/profile"] {
            let mut req = get_with_token(path, None);
            if let Ok(value) = authorization.parse() {
                req.headers_mut().insert(header::AUTHORIZATION, value);
            }
            requests.push(req);
        }
    }
    // Non-UTF-8 header values.
    let mut req = get_with_token("/auth/verify", None);
    req.headers_mut().insert(
        header::AUTHORIZATION,
        axum::http::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
    );
    requests.push(req);
    let mut req = get_with_token("/auth/verify", Some(&format!("Bearer {token}")));
    req.headers_mut().insert(
        "x-api-key",
        axum::http::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
    );
    requests.push(req);
    let mut req = post_raw("/auth/login", "{}");
    req.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_bytes(b"application/\xffjson").unwrap(),
    );
    requests.push(req);
    let mut req = post_raw("/auth/login", "{}");
    req.headers_mut()
        .insert(header::CONTENT_LENGTH, "-5".parse().unwrap());
    requests.push(req);
    // Odd paths and methods.
    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/auth"),
        (Method::GET, "/auth/"),
        (Method::GET, "//auth//verify"),
        (Method::GET, "/auth/verify/extra"),
        (Method::GET, "/%00"),
        (Method::OPTIONS, "/auth/login"),
        (Method::HEAD, "/health"),
        (Method::PATCH, "/health"),
    ] {
        requests.push(request(method, path, Some(KEY), None, Body::empty()));
    }

    let count = requests.len();
    for (i, req) in requests.into_iter().enumerate() {
        let label = format!("#{i} {} {}", req.method(), req.uri());
        let reply = send(&app, req).await;
        assert!(
            reply.status.is_client_error() || reply.status.is_success(),
            "{label} gave {}: {}",
            reply.status,
            reply.json
        );
    }
    assert!(count > 50);
}

#[test]
fn invalid_configs_are_typed_errors() {
    for cost in [0, 3, 32, 100] {
        assert!(
            matches!(AppState::new(ServerConfig::new(cost, KEY)), Err(ServerError::InvalidCost(c)) if c == cost),
            "cost {cost}"
        );
    }
    for key in ["", "has space", "tab\t", "ünicode"] {
        assert!(
            matches!(
                AppState::new(ServerConfig::new(4, key)),
                Err(ServerError::InvalidApiKey)
            ),
            "{key:?}"
        );
    }
    let mut cfg = config();
    cfg.jwt_secret.clear();
    assert!(matches!(
        AppState::new(cfg),
        Err(ServerError::EmptyJwtSecret)
    ));
    let mut cfg = config();
    cfg.hash_threads = 0;
    assert!(matches!(
        AppState::new(cfg),
        Err(ServerError::ZeroHashThreads)
    ));
    let mut cfg = config();
    cfg.token_ttl = Duration::from_millis(500);
    assert!(matches!(
        AppState::new(cfg),
        Err(ServerError::InvalidTokenTtl)
    ));

    let default = ServerConfig::default();
    assert_eq!(default.cost, 12);
    assert_eq!(default.api_key.len(), 32);
    assert_eq!(default.jwt_secret.len(), 32);
    assert_eq!(default.hash_mode, HashMode::Pool);
    assert!(default.hash_threads >= 1);
    assert_ne!(default.api_key, ServerConfig::default().api_key);
    // Debug output never shows the secrets.
    let debug = format!("{default:?}");
    assert!(!debug.contains(&default.api_key), "{debug}");
}
