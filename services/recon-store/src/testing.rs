//! Fresh, throw-away databases for tests: each gets its own, migrated, and dropped by
//! [`TestDatabase::drop_now`].

pub mod attribution;

use rand::Rng;
use sqlx::PgPool;

use crate::database;

/// The server tests use: `TEST_DATABASE_SERVER`, or the local one.
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_SERVER")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432".to_string())
}

#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    pub pool: PgPool,
}

impl TestDatabase {
    /// Creates and migrates `test_<random>`.
    pub async fn create() -> TestDatabase {
        let name = format!("test_{:016x}", rand::rng().random::<u64>());
        let url = format!("{}/{name}", server_url());
        let pool = database::prepare(&url)
            .await
            .expect("a test database can be prepared");
        TestDatabase { url, pool }
    }

    pub async fn drop_now(self) {
        self.pool.close().await;
        database::drop_database(&self.url)
            .await
            .expect("the test database can be dropped");
    }
}
