//! Checked domain values for Helcim's card transactions and card batches.

mod batch;
mod transaction;

pub use batch::{BatchStats, CardBatch, CardBatchId};
pub use transaction::{CardTransaction, TransactionId, TransactionStatus, TransactionType};

use crate::money::parse_minor_units;
use crate::wire::Scalar;

/// Why a Helcim record could not be read; names the field so an operator can find it
/// in the raw JSON that is kept beside it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct FieldError {
    pub field: &'static str,
    pub reason: String,
}

impl FieldError {
    pub(crate) fn new(field: &'static str, reason: impl ToString) -> Self {
        FieldError {
            field,
            reason: reason.to_string(),
        }
    }
}

fn required<'a>(field: &'static str, value: &'a Scalar) -> Result<&'a str, FieldError> {
    value
        .non_empty()
        .ok_or_else(|| FieldError::new(field, "is empty"))
}

/// A non-negative whole number written as a number or a numeric string (`"7"`, `7`,
/// `7.0`).
fn whole_number(field: &'static str, value: &Scalar) -> Result<u64, FieldError> {
    let text = required(field, value)?;
    let number = parse_minor_units(text, 0).map_err(|e| FieldError::new(field, e))?;
    u64::try_from(number).map_err(|_| FieldError::new(field, "is negative"))
}

fn optional_whole_number(
    field: &'static str,
    value: &Option<Scalar>,
) -> Result<Option<u64>, FieldError> {
    match value.as_ref().and_then(Scalar::non_empty) {
        None => Ok(None),
        Some(_) => whole_number(field, value.as_ref().expect("checked above")).map(Some),
    }
}
