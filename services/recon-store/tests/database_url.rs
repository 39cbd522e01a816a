//! A malformed DATABASE_URL is reported without its password, in the message and in
//! `Debug` (what `main` prints when it returns the error).

use recon_store::database;

const PASSWORD: &str = "hunter2-Pa55word";

/// URLs that are wrong in different ways, each with the password in it.
fn malformed() -> Vec<String> {
    vec![
        format!("postgres://recon:{PASSWORD}@db.internal:notaport/helcim_recon"),
        format!("postgres://recon:{PASSWORD}@db.internal:99999/helcim_recon"),
        format!("postgres://recon:{PASSWORD}@[::1/helcim_recon"),
        format!("postgres://recon:{PASSWORD}@db.internal/helcim_recon?sslmode=verify-fully"),
        format!("postgres://recon:{PASSWORD}@db.internal/helcim_recon?port=x"),
        format!("postgres://recon:{PASSWORD}%zz@db.internal/helcim_recon"),
        format!("recon:{PASSWORD}@db.internal/helcim_recon"),
        format!("mysql://recon:{PASSWORD}@db.internal/helcim_recon"),
        format!("postgres//recon:{PASSWORD}@db.internal/helcim_recon"),
    ]
}

fn assert_hidden(what: &str, url: &str, shown: &str) {
    assert!(
        !shown.contains(PASSWORD) && !shown.contains("hunter2"),
        "{what} for {url:?} shows the password: {shown}"
    );
}

#[tokio::test]
async fn a_malformed_database_url_never_shows_its_password() {
    for url in malformed() {
        let error = database::connect(&url)
            .await
            .expect_err("a malformed URL is refused");
        assert_hidden("the error", &url, &format!("{error:#}"));
        assert_hidden("Debug", &url, &format!("{error:?}"));
        assert!(
            format!("{error:#}").contains("DATABASE_URL"),
            "the error names the variable: {error:#}"
        );

        let error = database::create_database_if_missing(&url)
            .await
            .expect_err("a malformed URL is refused");
        assert_hidden("the error", &url, &format!("{error:#}"));
        assert_hidden("Debug", &url, &format!("{error:?}"));
    }
}
