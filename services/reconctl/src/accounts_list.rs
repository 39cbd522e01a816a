//! `reconctl accounts list`: one tab-separated line per account under a header, then
//! the next steps an operator owes (accounts without a verifier token, webhook URLs
//! shown as paths), then a summary alone on the last line. Tokens never print; verifier
//! tokens show as fingerprints.

use anyhow::bail;
use recon_store::{AccountSummary, PartnerTokenSource};

/// The header: scripts find columns by these names.
pub const HEADER: &str = "account\twebhook url\tapi token\tverifiers\tpartner token\treferred by\tconnected id\tshare bps";

/// The receiver's public base URL, checked: `http(s)://host[:port][/prefix]`, no
/// trailing slash kept.
pub fn public_url(text: &str) -> anyhow::Result<String> {
    let url = text.trim().trim_end_matches('/');
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        bail!(
            "the public URL {url:?} must start with https:// (the receiver's address as Helcim reaches it, e.g. https://recon.example.com)"
        );
    };
    if rest.is_empty() || rest.contains(['?', '#', ' ']) {
        bail!(
            "the public URL {url:?} must be a scheme, a host and at most a path prefix, e.g. https://recon.example.com"
        );
    }
    Ok(url.to_string())
}

/// The whole listing, `public_url` already checked by [`public_url`].
pub fn render(accounts: &[AccountSummary], public_url: Option<&str>) -> String {
    let mut out = String::new();
    out.push_str(HEADER);
    out.push('\n');
    for account in accounts {
        out.push_str(&row(account, public_url));
        out.push('\n');
    }
    let waiting: Vec<&AccountSummary> = accounts
        .iter()
        .filter(|a| a.active_verifiers.is_empty())
        .collect();
    for account in &waiting {
        let id = &account.account_id;
        out.push_str(&format!(
            "next: {id} has no verifier token, so its webhooks are refused: once the merchant's webhook settings in Helcim show one, run `reconctl accounts rotate-verifier {id} --verifier-token-env VAR`\n"
        ));
    }
    if public_url.is_none() && !accounts.is_empty() {
        out.push_str(
            "note: webhook URLs are shown as paths; pass --public-url (or set RECON_PUBLIC_URL) to the receiver's public address to print them in full\n",
        );
    }
    out.push_str(&format!(
        "{} accounts, {} without a verifier token\n",
        accounts.len(),
        waiting.len()
    ));
    out
}

fn row(account: &AccountSummary, public_url: Option<&str>) -> String {
    let id = &account.account_id;
    let webhook = format!("{}/webhooks/helcim/{id}", public_url.unwrap_or(""));
    let verifiers = if account.active_verifiers.is_empty() {
        "none".to_string()
    } else {
        account.active_verifiers.join(" ")
    };
    let partner = match &account.partner_token {
        PartnerTokenSource::Own => "own".to_string(),
        PartnerTokenSource::FromReferrer(referrer) => format!("from {referrer}"),
        PartnerTokenSource::None => "none".to_string(),
    };
    // Helcim's `connectedAccountId` is stored as it came, any characters: a tab or a
    // line break in it would shift every column after it, or start a line of its own.
    let dash = |v: &Option<String>| match v {
        Some(v) => v
            .chars()
            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
            .collect(),
        None => "-".to_string(),
    };
    [
        id.clone(),
        webhook,
        if account.has_api_token { "yes" } else { "no" }.to_string(),
        verifiers,
        partner,
        dash(&account.referred_by),
        dash(&account.connected_account_id),
        dash(&account.revenue_share_bps.map(|bps| bps.to_string())),
    ]
    .join("\t")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: &str) -> AccountSummary {
        AccountSummary {
            account_id: id.into(),
            display_name: None,
            has_api_token: false,
            has_partner_token: false,
            active_verifiers: vec![],
            referred_by: None,
            connected_account_id: None,
            partner_token: PartnerTokenSource::None,
            revenue_share_bps: None,
            created_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    fn listing() -> Vec<AccountSummary> {
        let mut partner = account("partner");
        partner.active_verifiers = vec!["3f2a1b9c0d4e".into(), "0a1b2c3d4e5f".into()];
        partner.has_partner_token = true;
        partner.partner_token = PartnerTokenSource::Own;
        let mut connected = account("connected-981");
        connected.has_api_token = true;
        connected.referred_by = Some("partner".into());
        connected.connected_account_id = Some("981".into());
        connected.partner_token = PartnerTokenSource::FromReferrer("partner".into());
        connected.revenue_share_bps = Some(250);
        vec![connected, partner]
    }

    #[test]
    fn each_account_is_one_line_with_its_full_webhook_url_then_the_next_steps_and_a_summary() {
        let out = render(&listing(), Some("https://recon.example.com"));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                HEADER,
                "connected-981\thttps://recon.example.com/webhooks/helcim/connected-981\tyes\tnone\tfrom partner\tpartner\t981\t250",
                "partner\thttps://recon.example.com/webhooks/helcim/partner\tno\t3f2a1b9c0d4e 0a1b2c3d4e5f\town\t-\t-\t-",
                "next: connected-981 has no verifier token, so its webhooks are refused: once the merchant's webhook settings in Helcim show one, run `reconctl accounts rotate-verifier connected-981 --verifier-token-env VAR`",
                "2 accounts, 1 without a verifier token",
            ]
        );
        for line in &lines[1..3] {
            assert_eq!(line.split('\t').count(), HEADER.split('\t').count());
        }
    }

    #[test]
    fn a_connected_account_id_with_a_tab_or_a_line_break_stays_in_its_column() {
        let mut odd = account("connected.00112233445566778899aabbccddeeff");
        odd.connected_account_id = Some("98\t1\nnext: x".into());
        let out = render(&[odd], None);
        let rows: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("connected."))
            .collect();
        assert_eq!(rows.len(), 1, "{out}");
        assert_eq!(rows[0].split('\t').count(), HEADER.split('\t').count());
        assert!(
            rows[0].ends_with("\t98\u{fffd}1\u{fffd}next: x\t-"),
            "{out}"
        );
        assert!(!out.lines().any(|l| l == "next: x"));
    }

    #[test]
    fn without_a_public_url_the_paths_print_and_the_listing_says_so() {
        let out = render(&listing(), None);
        assert!(out.contains("\t/webhooks/helcim/connected-981\t"), "{out}");
        assert!(
            out.contains("note: webhook URLs are shown as paths"),
            "{out}"
        );
        assert_eq!(
            out.lines().last(),
            Some("2 accounts, 1 without a verifier token")
        );
        assert_eq!(
            render(&[], None),
            format!("{HEADER}\n0 accounts, 0 without a verifier token\n")
        );
    }

    #[test]
    fn a_public_url_must_be_a_base_url() {
        assert_eq!(
            public_url("https://recon.example.com/").unwrap(),
            "https://recon.example.com"
        );
        assert_eq!(
            public_url(" http://10.0.0.5:8080/hooks ").unwrap(),
            "http://10.0.0.5:8080/hooks"
        );
        for bad in ["recon.example.com", "ftp://x", "https://", "https://x/?a=1"] {
            let error = public_url(bad).unwrap_err().to_string();
            assert!(error.contains("must"), "{bad}: {error}");
        }
    }
}
