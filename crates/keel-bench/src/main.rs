//! The `keel-bench` binary: parse the flags, run, print the summary. See the
//! library docs for what the verbs send and how the figures are computed.

use anyhow::{Context as _, bail};
use clap::Parser as _;
use keel_bench::cli::{self, Cli, Output};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let plan = Cli::parse()
        .plan(cli::stdout_is_terminal())
        .context("invalid flags")?;
    let output = plan.output;
    let report = plan.run().await.context("benchmark run")?;
    match output {
        Output::Text => print!("{}", report.to_text()),
        Output::Json => println!("{}", report.to_json()),
    }
    match report.failed_section() {
        Some(("summary", errors)) => bail!("every one of the {errors} requests failed"),
        Some((section, errors)) => bail!("every one of the {errors} requests failed ({section})"),
        None => Ok(()),
    }
}
