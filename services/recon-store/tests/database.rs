//! The pool against a real Postgres: its size and statement timeout are what the
//! settings say, and TLS works with the workspace's one crypto provider.

use std::time::Duration;

use recon_store::database::{self, PoolOptions};
use recon_store::testing::{TestDatabase, server_url};

fn options(statement_timeout: Option<Duration>) -> PoolOptions {
    PoolOptions {
        max_connections: 2,
        statement_timeout,
        acquire_timeout: Duration::from_millis(500),
    }
}

#[tokio::test]
async fn a_statement_longer_than_the_statement_timeout_fails_with_a_clear_error() {
    let db = TestDatabase::create().await;
    let pool = database::connect_with(&db.url, &options(Some(Duration::from_millis(300))))
        .await
        .unwrap();

    let quick: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(quick, 1);
    let error = sqlx::query("SELECT pg_sleep(3)")
        .execute(&pool)
        .await
        .expect_err("Postgres cancels the statement");
    let database_error = error.as_database_error().expect("an error from Postgres");
    assert_eq!(database_error.code().as_deref(), Some("57014"), "{error}");
    assert!(
        error.to_string().contains("statement timeout"),
        "the error says why: {error}"
    );

    pool.close().await;
    db.drop_now().await;
}

#[tokio::test]
async fn migrations_are_not_cut_by_the_statement_timeout() {
    let db = TestDatabase::create().await;
    let pool = database::connect_with(&db.url, &options(Some(Duration::from_millis(300))))
        .await
        .unwrap();
    // `migrate` lifts the timeout on its own connection only (and closes it after).
    database::migrate(&pool).await.unwrap();
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(timeout, "300ms");
    pool.close().await;
    db.drop_now().await;
}

#[tokio::test]
async fn the_pool_never_opens_more_connections_than_its_size() {
    let db = TestDatabase::create().await;
    let pool = database::connect_with(&db.url, &options(None))
        .await
        .unwrap();
    let first = pool.acquire().await.unwrap();
    let second = pool.acquire().await.unwrap();
    let third = pool.acquire().await;
    assert!(
        matches!(third, Err(sqlx::Error::PoolTimedOut)),
        "a third connection waits, then times out: {third:?}"
    );
    drop((first, second));
    pool.close().await;
    db.drop_now().await;
}

#[tokio::test]
async fn sslmode_require_encrypts_the_connection() {
    let url = format!("{}/postgres?sslmode=require", server_url());
    let pool = database::connect_with(&url, &options(None)).await.unwrap();
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(encrypted, "the connection is TLS");
    pool.close().await;
}

#[tokio::test]
async fn sslmode_verify_full_refuses_a_certificate_it_cannot_verify() {
    // The local server's certificate is self-signed: verify-full must refuse it (a
    // production server's is checked against the system roots or `sslrootcert`).
    let url = format!("{}/postgres?sslmode=verify-full", server_url());
    let error = database::connect_with(&url, &options(None))
        .await
        .expect_err("an unverifiable certificate is refused");
    let text = format!("{error:#}").to_lowercase();
    assert!(text.contains("certificate"), "the error says why: {text}");
}
