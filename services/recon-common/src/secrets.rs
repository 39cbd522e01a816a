//! Secrets come from the environment or from files, never from the command line, where
//! `ps`, shell history and process listings would keep them.
//!
//! Each secret `NAME` is read from the variable `NAME`, or from the file that
//! `NAME_FILE` names (how container orchestrators mount secrets). Setting both is an
//! error, so a stale one never silently wins.

use std::path::Path;

use anyhow::{Context, bail};
use secrecy::SecretString;

/// Where variables are looked up: the process environment, or a map in tests.
pub trait Env {
    /// The variable's value, if set (an empty value counts as unset).
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name).filter(|v| !v.is_empty())
    }
}

/// Secret `name` from the process environment (`NAME` or `NAME_FILE`); `None` if
/// neither is set.
pub fn from_env(name: &str) -> anyhow::Result<Option<SecretString>> {
    read(&ProcessEnv, name)
}

/// Secret `name` from `env` (`NAME` or `NAME_FILE`); `None` if neither is set. A file's
/// trailing newline is dropped; an empty file is an error.
pub fn read(env: &dyn Env, name: &str) -> anyhow::Result<Option<SecretString>> {
    let file_var = format!("{name}_FILE");
    match (env.var(name), env.var(&file_var)) {
        (Some(_), Some(_)) => bail!("both {name} and {file_var} are set: keep one"),
        (Some(value), None) => Ok(Some(SecretString::from(value))),
        (None, Some(path)) => read_file(&file_var, Path::new(&path)).map(Some),
        (None, None) => Ok(None),
    }
}

/// What to set when `DATABASE_URL` is missing, for the services that keep the ledger
/// there (the worker, the API).
pub const LEDGER_DATABASE_URL: &str = "set it (or DATABASE_URL_FILE) to the ledger's Postgres, \
     e.g. postgres://USER:PASSWORD@HOST:5432/helcim_recon?sslmode=verify-full";

/// Secret `name` from `env` (`NAME` or `NAME_FILE`), which must be set: if neither is,
/// the error reads `NAME is not set: ` and then `missing` (what to set, and why).
pub fn required(env: &dyn Env, name: &str, missing: &str) -> anyhow::Result<SecretString> {
    read(env, name)?.ok_or_else(|| anyhow::anyhow!("{name} is not set: {missing}"))
}

fn read_file(file_var: &str, path: &Path) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "{file_var} names {}, which cannot be read as text",
            path.display()
        )
    })?;
    let value = text.strip_suffix('\n').unwrap_or(&text);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() {
        bail!("{file_var} names {}, which is empty", path.display());
    }
    Ok(SecretString::from(value.to_string()))
}

/// A binary's settings: flags and environment parsed into `S`, then the secrets read
/// by `read_secrets` from the process environment (never from a flag).
pub fn load<S: clap::Parser>(
    read_secrets: impl FnOnce(&mut S, &dyn Env) -> anyhow::Result<()>,
) -> anyhow::Result<S> {
    let mut settings = S::parse();
    read_secrets(&mut settings, &ProcessEnv)?;
    Ok(settings)
}

/// Asserts that `binary` (settings `S`) takes none of `flags`: each is refused as an
/// unknown argument, so a secret can never be passed where `ps` would show it.
#[cfg(feature = "test-support")]
pub fn assert_not_flags<S: clap::Parser>(binary: &str, flags: &[&str]) {
    for flag in flags {
        let Err(error) = S::try_parse_from([binary, flag, "s3cret"]) else {
            panic!("{binary} takes {flag}");
        };
        assert_eq!(
            error.kind(),
            clap::error::ErrorKind::UnknownArgument,
            "{flag}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn temp_file(contents: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "recon-secret-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn a_secret_is_read_from_its_variable() {
        let env = env(&[("API_TOKEN", "t0ken".into())]);
        let secret = read(&env, "API_TOKEN").unwrap().unwrap();
        assert_eq!(secret.expose_secret(), "t0ken");
        assert!(read(&env, "OTHER").unwrap().is_none());
    }

    #[test]
    fn a_required_secret_that_is_missing_says_what_to_set() {
        let env = env(&[("API_TOKEN", "t0ken".into())]);
        let secret = required(&env, "API_TOKEN", "set it").unwrap();
        assert_eq!(secret.expose_secret(), "t0ken");
        let error = required(&env, "OTHER", "set it (or OTHER_FILE)").unwrap_err();
        assert_eq!(
            error.to_string(),
            "OTHER is not set: set it (or OTHER_FILE)"
        );
    }

    #[test]
    fn a_secret_is_read_from_the_file_its_file_variable_names() {
        let path = temp_file("from-a-file\n");
        let env = env(&[("API_TOKEN_FILE", path.display().to_string())]);
        let secret = read(&env, "API_TOKEN").unwrap().unwrap();
        assert_eq!(secret.expose_secret(), "from-a-file");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn both_the_variable_and_the_file_is_an_error_that_shows_neither_value() {
        let env = env(&[
            ("API_TOKEN", "s3cret-value".into()),
            ("API_TOKEN_FILE", "/run/secrets/token".into()),
        ]);
        let error = read(&env, "API_TOKEN").unwrap_err();
        assert!(error.to_string().contains("API_TOKEN_FILE"), "{error}");
        assert!(!format!("{error:?}").contains("s3cret-value"));
    }

    #[test]
    fn an_unreadable_or_empty_file_is_an_error_naming_the_variable() {
        let env_missing = env(&[("API_TOKEN_FILE", "/nonexistent/recon/token".into())]);
        let error = read(&env_missing, "API_TOKEN").unwrap_err();
        assert!(format!("{error:#}").contains("API_TOKEN_FILE names /nonexistent/recon/token"));
        let path = temp_file("\n");
        let env_empty = env(&[("API_TOKEN_FILE", path.display().to_string())]);
        let error = read(&env_empty, "API_TOKEN").unwrap_err();
        assert!(error.to_string().contains("empty"), "{error}");
        std::fs::remove_file(path).unwrap();
    }
}
