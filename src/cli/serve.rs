//! `stemedb serve`: the node and its HTTP API, until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::CliError;
use stemedb::config::Config;
use stemedb::http::keys::KeyStore;
use stemedb::http::{Api, start};
use stemedb::node::Node;

/// Where the API keys and custodial agents live, inside the data directory.
const API_DIR: &str = "api";

/// `stemedb serve` arguments.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The data directory (created if missing).
    #[arg(long, default_value = "stemedb-data", value_name = "DIR")]
    data_dir: PathBuf,
    /// Listen on this address instead of `http.bind`.
    #[arg(long, value_name = "ADDR:PORT")]
    bind: Option<String>,
}

pub(crate) fn run(args: &ServeArgs, config: &Config) -> Result<(), CliError> {
    let mut config = config.clone();
    if let Some(bind) = &args.bind {
        config.http.bind.clone_from(bind);
        config.http.validate().map_err(CliError::Input)?;
    }
    let failed = |what: &str| {
        let what = what.to_owned();
        move |e: &dyn std::fmt::Display| CliError::Input(format!("{what}: {e}"))
    };
    actix::System::new().block_on(async move {
        let node = Node::start(config.clone(), &args.data_dir).map_err(|e| failed("cannot start the node")(&e))?;
        let (keys, created) =
            KeyStore::open(&args.data_dir.join(API_DIR)).map_err(|e| failed("cannot open the API keys")(&e))?;
        if let Some(path) = created {
            println!(
                "first start: a development admin key (all roles, bound to a custodial agent) is in {} (mode 0600)",
                path.display()
            );
        }
        let api = Api::new(node.clone(), Arc::new(keys), config.http.clone());
        let server = start(api, true).map_err(|e| failed(&format!("cannot listen on {}", config.http.bind))(&e))?;
        for addr in &server.addrs {
            println!("stemedb {} serving http://{addr}/v1 (data in {})", env!("CARGO_PKG_VERSION"), args.data_dir.display());
        }
        let served = server.running.await;
        println!("stopping: flushing the journal and the state");
        let stopped = node.shutdown().await;
        served.map_err(|e| failed("the server failed")(&e))?;
        stopped.map_err(|e| failed("shutdown failed")(&e))?;
        println!("stopped");
        Ok(())
    })
}
