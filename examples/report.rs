//! The diagnosis of this machine's accept backlogs (`maxlisten::report`), as text or JSON.
//!
//! ```text
//! cargo run --example report                 # aligned text
//! cargo run --example report -- --json       # the same data as one JSON object
//! cargo run --example report -- --addr 0.0.0.0:8080
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut json, mut addr, mut rest) = (false, "127.0.0.1:0", args.iter());
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--addr" if rest.len() > 0 => addr = rest.next().map_or(addr, String::as_str),
            _ => {
                eprintln!("usage: report [--json] [--addr HOST:PORT]");
                return ExitCode::from(2);
            }
        }
    }
    match maxlisten::report::Report::build(addr) {
        Ok(report) if json => println!("{}", report.to_json()),
        Ok(report) => print!("{}", report.to_text()),
        Err(err) => {
            eprintln!("report: {err}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
