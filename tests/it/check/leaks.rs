//! The leak probes, each against the fake with one leak: a password hash in the profile,
//! a cacheable token answer, 401s without a challenge, CORS that reflects any origin
//! with credentials, Django's debug page as an error body, a public user list. And
//! `--jwt-private-key`: an ES256 service's expired token is forged with its key.

use authbench::check::{check, Outcome};

use super::{assert_outcome, check_fake, fake_opts, fake_router, probe, EsKey, Flaws};
use crate::support::serve;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_hash_in_an_answer_fails_the_hash_probe() {
    let r = check_fake(Flaws {
        hash_in_profile: true,
        ..Flaws::default()
    })
    .await;
    assert_outcome(&r, "leak.password_hash", Outcome::Fail, "a bcrypt hash");
    let p = probe(&r, "leak.password_hash");
    assert!(
        p.request.as_deref().unwrap_or("").starts_with("GET /auth/"),
        "{p:#?}"
    );
    assert!(r.exit_code() == 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cacheable_token_answer_fails_the_cache_probe() {
    let r = check_fake(Flaws {
        cacheable_token: true,
        ..Flaws::default()
    })
    .await;
    assert_outcome(&r, "token.cache_control", Outcome::Fail, "no Cache-Control");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_without_a_challenge_fails_the_www_authenticate_probe() {
    let r = check_fake(Flaws {
        no_challenge: true,
        ..Flaws::default()
    })
    .await;
    assert_outcome(
        &r,
        "token.www_authenticate",
        Outcome::Fail,
        "without WWW-Authenticate",
    );
    // Low: it does not fail the run by itself (the fake's large-body failure does).
    assert_eq!(probe(&r, "token.www_authenticate").severity.as_str(), "low");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reflected_origin_with_credentials_fails_the_cors_probe() {
    let r = check_fake(Flaws {
        cors_any_origin: true,
        ..Flaws::default()
    })
    .await;
    assert_outcome(
        &r,
        "cors.credentials",
        Outcome::Fail,
        "Allow-Credentials: true",
    );
    let p = probe(&r, "cors.credentials");
    assert!(
        p.request
            .as_deref()
            .unwrap_or("")
            .contains("Origin: https://evil-"),
        "{p:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_framework_debug_page_fails_the_internals_probe() {
    let r = check_fake(Flaws {
        html_debug_errors: true,
        ..Flaws::default()
    })
    .await;
    assert_outcome(
        &r,
        "errors.no_internals",
        Outcome::Fail,
        "Django's debug page",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_list_without_credentials_fails_the_list_probe() {
    let r = check_fake(Flaws {
        public_user_list: true,
        ..Flaws::default()
    })
    .await;
    assert_outcome(&r, "users.list_public", Outcome::Fail, "200 [");
    assert!(probe(&r, "users.list_public")
        .sent
        .contains("GET /auth/register"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_es256_token_is_forged_expired_with_the_private_key() {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let key: &'static EsKey = Box::leak(Box::new(EsKey {
        private_pem: kp.serialize_pem(),
        public_pem: kp.public_key_pem(),
    }));
    let flaws = Flaws {
        es256: Some(key),
        ..Flaws::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("key.pem");
    std::fs::write(&pem, &key.private_pem).unwrap();

    // Without the key the probe says what to pass.
    let target = format!("http://{}", serve(fake_router(flaws)).await);
    let r = check(&fake_opts(target.clone())).await.unwrap().report;
    let p = probe(&r, "token.expired[verify]");
    assert_eq!(p.outcome, Outcome::Skip, "{p:#?}");
    assert!(
        p.note
            .as_deref()
            .unwrap_or("")
            .contains("--jwt-private-key"),
        "{p:#?}"
    );

    // With it, the forged expired token is refused: a pass.
    let opts = authbench::check::CheckOptions {
        jwt_private_key: Some(pem.clone()),
        ..fake_opts(target)
    };
    let r = check(&opts).await.unwrap().report;
    assert_eq!(
        probe(&r, "token.expired[verify]").outcome,
        Outcome::Pass,
        "{:#?}",
        probe(&r, "token.expired[verify]")
    );

    // A service that ignores `exp` takes the forged token: proof it is correctly signed.
    let lax = format!(
        "http://{}",
        serve(fake_router(Flaws {
            ignore_exp: true,
            ..flaws
        }))
        .await
    );
    let opts = authbench::check::CheckOptions {
        jwt_private_key: Some(pem.clone()),
        ..fake_opts(lax)
    };
    let r = check(&opts).await.unwrap().report;
    assert_eq!(probe(&r, "token.expired[verify]").outcome, Outcome::Fail);

    // With the public key, the algorithm-confusion probe runs: refused here...
    let public = dir.path().join("public.pem");
    std::fs::write(&public, &key.public_pem).unwrap();
    let target = format!("http://{}", serve(fake_router(flaws)).await);
    let opts = authbench::check::CheckOptions {
        jwt_public_key: Some(public.clone()),
        ..fake_opts(target)
    };
    let r = check(&opts).await.unwrap().report;
    assert_eq!(
        probe(&r, "token.alg_confusion[verify]").outcome,
        Outcome::Pass
    );
    // ...and taken by a verifier that lets the token pick the algorithm.
    let confused = format!(
        "http://{}",
        serve(fake_router(Flaws {
            alg_confusion: true,
            ..flaws
        }))
        .await
    );
    let opts = authbench::check::CheckOptions {
        jwt_public_key: Some(public),
        ..fake_opts(confused)
    };
    let r = check(&opts).await.unwrap().report;
    assert_eq!(
        probe(&r, "token.alg_confusion[verify]").outcome,
        Outcome::Fail
    );
    assert_eq!(probe(&r, "token.alg_none[verify]").outcome, Outcome::Pass);

    // A key that is not a PEM private key is a usage error, not a panic.
    std::fs::write(&pem, "not a key").unwrap();
    let opts = authbench::check::CheckOptions {
        jwt_private_key: Some(pem),
        ..fake_opts(String::from("http://127.0.0.1:1"))
    };
    assert!(check(&opts).await.is_err());
}
