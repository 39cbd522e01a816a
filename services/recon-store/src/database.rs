//! Connecting, creating the database when missing, and applying `migrations/`.

mod options;

pub use options::{InvalidDatabaseUrl, PoolOptions, parse_url};

use anyhow::{Context, bail};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection, PgPool};

/// The migrations in the repository's `migrations/`, compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// A pool for `url`, sized and limited by the environment ([`PoolOptions::from_env`]),
/// failing fast when Postgres does not answer.
pub async fn connect(url: &str) -> anyhow::Result<PgPool> {
    connect_with(url, &PoolOptions::from_env()?).await
}

/// A pool for `url` with the given size and limits.
pub async fn connect_with(url: &str, pool: &PoolOptions) -> anyhow::Result<PgPool> {
    let options = pool.apply(parse_url(url)?);
    PgPoolOptions::new()
        .max_connections(pool.max_connections)
        .acquire_timeout(pool.acquire_timeout)
        .connect_with(options)
        .await
        .with_context(|| {
            format!(
                "Failed to connect to Postgres at {}; is it running, and does DATABASE_URL name it?",
                describe(url)
            )
        })
}

/// Creates the database `url` names, if it does not exist. Returns whether it did.
pub async fn create_database_if_missing(url: &str) -> anyhow::Result<bool> {
    let options: PgConnectOptions = parse_url(url)?;
    let name = options
        .get_database()
        .context("DATABASE_URL names no database (…/helcim_recon at the end)")?
        .to_string();
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        bail!("database name {name:?} may only hold letters, digits, `_` and `-`");
    }
    let mut server = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .with_context(|| format!("Failed to connect to Postgres at {}", describe(url)))?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut server)
        .await
        .context("Failed to look the database up")?;
    if exists.is_none() {
        // Identifiers cannot be bound; the name was checked above.
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut server)
            .await
            .with_context(|| format!("Failed to create database {name}"))?;
    }
    server.close().await.ok();
    Ok(exists.is_none())
}

/// Applies every migration not yet applied. The statement timeout does not apply to
/// them: building an index on a large table may rightly take longer.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    let mut connection = pool
        .acquire()
        .await
        .context("Failed to connect to migrate")?;
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut *connection)
        .await?;
    // Closed afterwards rather than returned to the pool without its timeout.
    connection.close_on_drop();
    MIGRATOR
        .run(&mut *connection)
        .await
        .context("Failed to apply the migrations")
}

/// Creates the database if missing, migrates it, and returns a pool.
pub async fn prepare(url: &str) -> anyhow::Result<PgPool> {
    create_database_if_missing(url).await?;
    let pool = connect(url).await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// Drops a database (tests clean up with it).
pub async fn drop_database(url: &str) -> anyhow::Result<()> {
    let options: PgConnectOptions = parse_url(url)?;
    let name = options.get_database().context("no database")?.to_string();
    let mut server: PgConnection = options.database("postgres").connect().await?;
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut server)
    .await?;
    Ok(())
}

/// `host:port/database`, without user or password, for messages.
pub fn describe(url: &str) -> String {
    match url::Url::parse(url) {
        // Anything else (`user:password@host`, say) parses with the password in its path.
        Ok(parsed)
            if matches!(parsed.scheme(), "postgres" | "postgresql")
                && !parsed.cannot_be_a_base() =>
        {
            format!(
                "{}:{}{}",
                parsed.host_str().unwrap_or("?"),
                parsed.port().unwrap_or(5432),
                parsed.path()
            )
        }
        _ => "(an unreadable URL)".into(),
    }
}
