//! The `stemedb` command: key generation, signing and verification (and, later, the server).

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
