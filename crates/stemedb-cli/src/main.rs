//! The `stemedb` command: the server (`serve`), key generation, signing and verification, the
//! journal and state tools, the simulation arenas and the benchmark suite.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
