//! When to try again and when to give up, apart from any I/O. Outages are not the
//! message's fault: they are given up on only by time (`RECON_RETRY_GIVE_UP`, counted
//! from when the receiver took the webhook), so an outage longer than the retry ladder
//! dead-letters nothing. Causes of the message's own are given up on by count
//! (`WORKER_MAX_RETRIES`).

use std::time::Duration;

use crate::process::Fate;

/// The limits a worker applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Retries for causes of the message's own before it is dead-lettered.
    pub max_retries: u32,
    /// How long after the webhook was received a dependency outage is given up on.
    pub give_up_after: Duration,
}

/// What to do with a job once its fate is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Acknowledge, with the outcome for the metrics.
    Ack(&'static str),
    /// To the next retry queue; `counted` toward the message's own limit or not.
    Retry { reason: String, counted: bool },
    /// To the dead-letter queue with this reason.
    Dead(String),
    /// The database failed: find out whether Postgres answers before deciding.
    CheckDatabase(String),
}

impl Policy {
    /// The step for `fate`, given the message's own retries so far and how long ago
    /// the webhook was received.
    pub fn step(&self, fate: &Fate, message_retries: u32, since_received: Duration) -> Step {
        match fate {
            Fate::Done(outcome) => Step::Ack(outcome),
            Fate::Dead(reason) => Step::Dead(reason.clone()),
            Fate::Database(reason) => Step::CheckDatabase(reason.clone()),
            Fate::Retry(reason) if message_retries >= self.max_retries => {
                Step::Dead(format!("gave up after {message_retries} retries: {reason}"))
            }
            Fate::Retry(reason) => Step::Retry {
                reason: reason.clone(),
                counted: true,
            },
            Fate::Unavailable(reason) if since_received >= self.give_up_after => {
                Step::Dead(format!(
                    "gave up {} after the webhook was received (RECON_RETRY_GIVE_UP): {reason}",
                    human(since_received)
                ))
            }
            Fate::Unavailable(reason) => Step::Retry {
                reason: reason.clone(),
                counted: false,
            },
        }
    }
}

fn human(duration: Duration) -> String {
    let minutes = duration.as_secs() / 60;
    if minutes >= 120 {
        format!("{} h", minutes / 60)
    } else if minutes > 0 {
        format!("{minutes} min")
    } else {
        format!("{} s", duration.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        max_retries: 3,
        give_up_after: Duration::from_secs(72 * 3600),
    };

    #[test]
    fn an_outage_is_retried_uncounted_until_the_give_up_time() {
        let down = Fate::Unavailable("helcim 503".into());
        for retries in [0, 3, 500] {
            assert_eq!(
                POLICY.step(&down, retries, Duration::from_secs(71 * 3600)),
                Step::Retry {
                    reason: "helcim 503".into(),
                    counted: false
                }
            );
        }
        let late = POLICY.step(&down, 0, Duration::from_secs(72 * 3600));
        assert!(matches!(late, Step::Dead(r) if r.contains("72 h") && r.contains("helcim 503")));
    }

    #[test]
    fn a_cause_of_the_message_own_is_given_up_on_by_count() {
        let missing = Fate::Retry("not at Helcim yet".into());
        assert_eq!(
            POLICY.step(&missing, 2, Duration::ZERO),
            Step::Retry {
                reason: "not at Helcim yet".into(),
                counted: true
            }
        );
        let dead = POLICY.step(&missing, 3, Duration::ZERO);
        assert!(matches!(dead, Step::Dead(r) if r.starts_with("gave up after 3 retries")));
    }

    #[test]
    fn database_failures_are_checked_and_the_rest_pass_through() {
        assert_eq!(
            POLICY.step(&Fate::Database("db".into()), 9, Duration::ZERO),
            Step::CheckDatabase("db".into())
        );
        assert_eq!(
            POLICY.step(&Fate::Done("reconciled"), 0, Duration::ZERO),
            Step::Ack("reconciled")
        );
        assert_eq!(
            POLICY.step(&Fate::Dead("bad".into()), 0, Duration::ZERO),
            Step::Dead("bad".into())
        );
    }
}
