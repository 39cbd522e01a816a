//! One replica at a time per (kind, account): a Postgres session advisory lock, taken
//! with `pg_try_advisory_lock` on a connection held for the whole run. A replica that
//! dies drops its connection and Postgres releases the lock; one that finds it taken
//! skips the run.

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

/// A held sweep lock. [`SweepLock::release`] unlocks and returns the connection to the
/// pool; dropping it without (a panic, a cancelled task) closes the connection instead,
/// so a pooled connection never keeps the lock.
#[derive(Debug)]
pub struct SweepLock {
    conn: Option<PoolConnection<Postgres>>,
    key: String,
}

/// The lock's name, hashed by Postgres into the 64-bit advisory key.
fn key(kind: &str, account: &str) -> String {
    format!("recon-sweep:{kind}:{account}")
}

/// Takes the lock for `kind` on `account`, or `None` when another session holds it.
pub async fn try_lock(
    pool: &PgPool,
    kind: &str,
    account: &str,
) -> Result<Option<SweepLock>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let key = key(kind, account);
    let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
        .bind(&key)
        .fetch_one(&mut *conn)
        .await?;
    Ok(taken.then_some(SweepLock {
        conn: Some(conn),
        key,
    }))
}

impl SweepLock {
    pub async fn release(mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let unlocked: Result<bool, _> =
            sqlx::query_scalar("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
                .bind(&self.key)
                .fetch_one(&mut *conn)
                .await;
        if !matches!(unlocked, Ok(true)) {
            // Not sure the lock is gone: end the session rather than pool it.
            drop(conn.detach());
        }
    }
}

impl Drop for SweepLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}
