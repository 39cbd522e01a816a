//! An account's revenue share rate (`accounts.revenue_share_bps`): what the partner
//! earns of Helcim's revenue on the account, in basis points. The gaps and the month
//! report multiply the money at risk by it; without one no share at risk is shown.

use sqlx::PgPool;

use super::StoreError;

/// The highest rate: 10,000 basis points is 100 %.
pub const MAX_SHARE_BPS: i32 = 10_000;

/// Sets (`Some`) or clears (`None`) the share rate of `account_id`.
pub async fn set_revenue_share(
    pool: &PgPool,
    account_id: &str,
    bps: Option<i32>,
) -> Result<(), StoreError> {
    if let Some(bps) = bps.filter(|b| !(0..=MAX_SHARE_BPS).contains(b)) {
        return Err(StoreError::Invalid(format!(
            "a share rate is 0 to {MAX_SHARE_BPS} basis points (250 is 2.5 %), not {bps}"
        )));
    }
    let updated = sqlx::query(
        "UPDATE accounts SET revenue_share_bps = $2, updated_at = now() WHERE account_id = $1",
    )
    .bind(account_id)
    .bind(bps)
    .execute(pool)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(StoreError::NoSuchAccount(account_id.to_string()));
    }
    Ok(())
}
