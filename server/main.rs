use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    slipway::app::cli::main(slipway::app::cli::Cli::parse())
}
