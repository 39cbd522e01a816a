//! DATABASE_URL holds a password: it is read from the environment only.

use clap::Parser;
use clap::error::ErrorKind;
use recon_api::Settings;
use secrecy::ExposeSecret;

#[test]
fn the_database_url_is_not_a_command_line_flag() {
    let error = Settings::try_parse_from(["recon-api", "--database-url", "postgres://u:p@h/db"])
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnknownArgument);
}

#[test]
fn the_database_url_comes_from_the_environment_and_is_required() {
    let mut settings = Settings::parse_from(["recon-api"]);
    let env =
        |name: &str| (name == "DATABASE_URL").then(|| "postgres://u:pw@db/ledger".to_string());
    settings.read_secrets(&env).unwrap();
    assert_eq!(
        settings.database_url.expose_secret(),
        "postgres://u:pw@db/ledger"
    );
    let error = settings.read_secrets(&|_: &str| None).unwrap_err();
    assert!(
        error.to_string().contains("DATABASE_URL is not set"),
        "{error}"
    );
}

#[test]
fn trusted_proxies_are_a_comma_separated_list_of_addresses_or_networks() {
    let none = Settings::parse_from(["recon-api"]);
    assert!(none.trusted_proxies.is_empty());
    let empty = Settings::parse_from(["recon-api", "--trusted-proxies", ""]);
    assert!(empty.trusted_proxies.is_empty());
    let some = Settings::parse_from(["recon-api", "--trusted-proxies", "10.0.0.0/8,192.0.2.1"]);
    assert_eq!(some.trusted_proxies.len(), 2);
    let error =
        Settings::try_parse_from(["recon-api", "--trusted-proxies", "ingress"]).unwrap_err();
    assert!(error.to_string().contains("10.0.0.0/8"), "{error}");
}
