//! Simulated merchant accounts: credentials, terminals, cards and customers.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::activity::{Account, Terminal};

/// A card a customer of the merchant pays with.
#[derive(Debug, Clone)]
pub(super) struct Card {
    pub card_type: &'static str,
    /// First six and last four digits.
    pub masked: String,
    pub token: String,
    pub holder: String,
}

/// An account and what its customers pay with.
#[derive(Debug, Clone)]
pub(super) struct AccountProfile {
    pub account: Account,
    pub cards: Vec<Card>,
    customers: Vec<String>,
}

// Helcim's published test cards, plus a Discover range.
const CARD_RANGES: [(&str, &str, &str); 4] = [
    ("VI", "412493", "9990"),
    ("MC", "541333", "9130"),
    ("AX", "374245", "1006"),
    ("DI", "601100", "0004"),
];
const HOLDERS: [&str; 8] = [
    "Avery Chen",
    "Jordan Patel",
    "Sam Tremblay",
    "Riley Martin",
    "Morgan Roy",
    "Casey Singh",
    "Taylor Gagnon",
    "Jamie Wilson",
];

impl AccountProfile {
    pub fn generate(index: usize, rng: &mut ChaCha8Rng) -> Self {
        let number = index + 1;
        // The first account takes both currencies so every run exercises both; the
        // others are Canadian, American, or both.
        let currencies: &[&'static str] = match (index, rng.random_range(0..3)) {
            (0, _) | (_, 2) => &["CAD", "USD"],
            (_, 0) => &["CAD"],
            _ => &["USD"],
        };
        let terminals = currencies
            .iter()
            .enumerate()
            .map(|(t, currency)| Terminal {
                terminal_id: format!("{}", 70_000 + number * 10 + t),
                currency,
            })
            .collect();
        // Odd accounts are mid-rotation: two verifier tokens sign every webhook.
        let verifier_count = if index % 2 == 1 { 2 } else { 1 };
        let verifier_tokens = (0..verifier_count).map(|_| verifier_token(rng)).collect();
        let cards = (0..rng.random_range(4..9))
            .map(|_| {
                let (card_type, first6, last4) =
                    CARD_RANGES[rng.random_range(0..CARD_RANGES.len())];
                Card {
                    card_type,
                    masked: format!("{first6}{last4}"),
                    token: code(rng, 23),
                    holder: HOLDERS[rng.random_range(0..HOLDERS.len())].to_string(),
                }
            })
            .collect();
        let customers = (0..rng.random_range(5..20))
            .map(|c| format!("CST{number}{:04}", 1000 + c))
            .collect();
        AccountProfile {
            account: Account {
                account_id: format!("sim-merchant-{number}"),
                api_token: code(rng, 40),
                no_access_token: code(rng, 40),
                verifier_tokens,
                terminals,
            },
            cards,
            customers,
        }
    }

    /// CAD terminals take three quarters of the traffic when there is a choice.
    pub fn pick_terminal(&self, rng: &mut ChaCha8Rng) -> usize {
        if self.account.terminals.len() > 1 && rng.random_range(0..4) == 0 {
            1
        } else {
            0
        }
    }

    pub fn terminal_index(&self, terminal_id: &str) -> usize {
        self.account
            .terminals
            .iter()
            .position(|t| t.terminal_id == terminal_id)
            .expect("transactions use the account's terminals")
    }

    pub fn card(&self, token: &str) -> &Card {
        self.cards
            .iter()
            .find(|c| c.token == token)
            .expect("transactions use the account's cards")
    }

    pub fn customer(&self, rng: &mut ChaCha8Rng) -> String {
        self.customers[rng.random_range(0..self.customers.len())].clone()
    }
}

/// Upper-case letters and digits, as Helcim's codes and tokens look.
pub(crate) fn code(rng: &mut ChaCha8Rng, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A Standard Webhooks verifier token: base64 of 32 random bytes.
pub(crate) fn verifier_token(rng: &mut ChaCha8Rng) -> String {
    let mut key = [0_u8; 32];
    rng.fill(&mut key);
    STANDARD.encode(key)
}
