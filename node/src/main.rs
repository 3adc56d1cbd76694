//! `traceless-node`: runs a Traceless relay node (see `traceless-node --help`).

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = traceless_node::cli::Cli::parse();
    traceless_node::logging::init(cli.log_format);
    match traceless_node::cli::main(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("traceless-node: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
