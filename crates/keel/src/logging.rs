//! Logging through `tracing`: `--logger zap` writes one JSON object per line (the event's
//! fields, `message` among them, at the top level, as zap puts `msg`), `capnslog` plain
//! text; `--log-level` is the lowest level written; `--log-outputs` picks the stream.

use tracing::level_filters::LevelFilter;

use crate::flags::{LogFormat, LogLevel, LogOptions, LogOutput};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// A global subscriber was already installed (only possible when called twice).
    #[error("logging is already set up: {0}")]
    AlreadySet(String),
}

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    }
}

/// Installs the process-wide subscriber described by `options`.
pub fn init(options: &LogOptions) -> Result<(), LoggingError> {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level_filter(options.level))
        .with_ansi(false)
        .with_target(true);
    let result = match (options.format, options.output) {
        (LogFormat::Text, LogOutput::Stderr) => builder.with_writer(std::io::stderr).try_init(),
        (LogFormat::Text, LogOutput::Stdout) => builder.with_writer(std::io::stdout).try_init(),
        (LogFormat::Json, LogOutput::Stderr) => builder
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .try_init(),
        (LogFormat::Json, LogOutput::Stdout) => builder
            .json()
            .flatten_event(true)
            .with_writer(std::io::stdout)
            .try_init(),
    };
    result.map_err(|error| LoggingError::AlreadySet(error.to_string()))
}
