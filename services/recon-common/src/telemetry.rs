//! Logging: JSON lines for machines (`LOG_FORMAT=json`, the default in containers) or
//! readable lines for people (`LOG_FORMAT=pretty`). The level comes from `RUST_LOG`
//! (default `info`, with sqlx's notices at `warn`).

use std::io::IsTerminal;
use std::str::FromStr;

use anyhow::bail;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Json,
    Pretty,
}

impl FromStr for LogFormat {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "json" | "" => Ok(LogFormat::Json),
            "pretty" | "text" => Ok(LogFormat::Pretty),
            other => bail!("LOG_FORMAT={other:?} is not `json` or `pretty`"),
        }
    }
}

/// Installs the global subscriber; call once at the start of `main`. Logs go to
/// standard error so standard output stays free for a command's own output.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second call (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder
            .compact()
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats_parse_and_bad_ones_say_what_is_allowed() {
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("pretty".parse::<LogFormat>().unwrap(), LogFormat::Pretty);
        let err = "xml".parse::<LogFormat>().unwrap_err().to_string();
        assert!(err.contains("`json` or `pretty`"), "{err}");
    }
}
