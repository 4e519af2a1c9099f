//! The `gatehouse` command line (DESIGN §2, configuration and CLI contract): see `cli`.
#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
