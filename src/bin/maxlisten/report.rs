//! `maxlisten report`: the library's diagnosis, as text or JSON.

use std::process::ExitCode;

use maxlisten::report::Report;

pub(crate) const EXAMPLES: &str = "Examples:\n  maxlisten report\n  maxlisten report --json\n  \
    maxlisten report --addr 0.0.0.0:8080";

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// The address to bind the measured maxlisten listener to (std's and tokio's are measured
    /// on an ephemeral loopback port).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: String,
}

pub(crate) fn run(args: Args) -> ExitCode {
    match Report::build(args.addr.as_str()) {
        Ok(report) if args.json => println!("{}", report.to_json()),
        Ok(report) => print!("{}", report.to_text()),
        Err(err) => {
            eprintln!("maxlisten report: {err}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
