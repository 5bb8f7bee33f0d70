//! The `keel-bench` binary: parse the flags, run, print the summary. See the
//! library docs for what the verbs send and how the figures are computed.

use anyhow::{Context as _, bail};
use clap::Parser as _;
use keel_bench::cli::{self, Cli, Output};
use keel_bench::runner;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let plan = Cli::parse()
        .plan(cli::stdout_is_terminal())
        .context("invalid flags")?;
    let summary = runner::run(&plan.config, plan.workload)
        .await
        .context("benchmark run")?;
    match plan.output {
        Output::Text => print!("{}", summary.to_text()),
        Output::Json => println!("{}", summary.to_json()),
    }
    if summary.requests == 0 {
        bail!("every one of the {} requests failed", summary.errors);
    }
    Ok(())
}
