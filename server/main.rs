use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    slipway::cli::main(slipway::cli::Cli::parse())
}
