//! Logging through `tracing`: `--logger zap` writes one JSON object per line (the event's
//! fields, `message` among them, at the top level, as zap puts `msg`); `--logger capnslog`
//! writes capnslog's plain-text layout, `2026-11-22 17:05:05.026945 I | target: message`
//! (UTC, microseconds, one level letter: E W I D T); `--log-level` is the lowest level
//! written; `--log-outputs` picks the stream.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

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

/// The proleptic Gregorian `(year, month, day)` of a count of days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).expect("a month is 1..=12"),
        u32::try_from(day).expect("a day is 1..=31"),
    )
}

/// `YYYY-MM-DD HH:MM:SS.micros` in UTC for a time since the epoch.
fn capnslog_timestamp(since_epoch: std::time::Duration) -> String {
    let seconds = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let second_of_day = seconds.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:06}",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
        since_epoch.subsec_micros()
    )
}

/// capnslog's line layout.
struct Capnslog;

impl<S, N> FormatEvent<S, N> for Capnslog
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // A clock before 1970 prints as the epoch rather than failing to log.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let level = match *event.metadata().level() {
            Level::ERROR => 'E',
            Level::WARN => 'W',
            Level::INFO => 'I',
            Level::DEBUG => 'D',
            Level::TRACE => 'T',
        };
        write!(
            writer,
            "{} {level} | {}: ",
            capnslog_timestamp(now),
            event.metadata().target()
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Installs the process-wide subscriber described by `options`.
pub fn init(options: &LogOptions) -> Result<(), LoggingError> {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level_filter(options.level))
        .with_ansi(false);
    let result = match (options.format, options.output) {
        (LogFormat::Text, LogOutput::Stderr) => builder
            .event_format(Capnslog)
            .with_writer(std::io::stderr)
            .try_init(),
        (LogFormat::Text, LogOutput::Stdout) => builder
            .event_format(Capnslog)
            .with_writer(std::io::stdout)
            .try_init(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_414), (2025, 11, 22));
        assert_eq!(civil_from_days(20_779), (2026, 11, 22));
    }

    #[test]
    fn capnslog_timestamps() {
        let at = Duration::from_secs(20_779 * 86_400 + 17 * 3600 + 5 * 60 + 5)
            + Duration::from_micros(26_945);
        assert_eq!(capnslog_timestamp(at), "2026-11-22 17:05:05.026945");
        assert_eq!(
            capnslog_timestamp(Duration::ZERO),
            "1970-01-01 00:00:00.000000"
        );
    }
}
