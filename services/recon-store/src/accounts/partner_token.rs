//! Which partner token the gateway adds for an account, as `reconctl accounts list`
//! shows it.

/// Where an account's partner token comes from: its own, else its referrer's (what
/// the gateway adds for a connected account without one), else none here (the gateway
/// then falls back on `HELCIM_PARTNER_TOKEN`, if it has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartnerTokenSource {
    Own,
    FromReferrer(String),
    None,
}

impl PartnerTokenSource {
    pub(crate) fn of(own: bool, referrer: Option<&str>, referrer_has_one: bool) -> Self {
        match (own, referrer) {
            (true, _) => PartnerTokenSource::Own,
            (false, Some(referrer)) if referrer_has_one => {
                PartnerTokenSource::FromReferrer(referrer.to_string())
            }
            _ => PartnerTokenSource::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PartnerTokenSource;

    #[test]
    fn an_own_partner_token_wins_then_the_referrers() {
        assert_eq!(
            PartnerTokenSource::of(true, Some("p"), true),
            PartnerTokenSource::Own
        );
        assert_eq!(
            PartnerTokenSource::of(false, Some("p"), true),
            PartnerTokenSource::FromReferrer("p".into())
        );
        assert_eq!(
            PartnerTokenSource::of(false, Some("p"), false),
            PartnerTokenSource::None,
            "a referrer without one gives none"
        );
        assert_eq!(
            PartnerTokenSource::of(false, None, false),
            PartnerTokenSource::None
        );
    }
}
