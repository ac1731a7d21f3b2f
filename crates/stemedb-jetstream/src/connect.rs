//! The node's NATS client at start: connects with the configured authentication and TLS,
//! tries again while no server answers, and gives up at once, with
//! [`ReplicationError::AuthRefused`], when a server refuses the credentials.
//!
//! Once connected, the client reconnects on its own for as long as the node runs; a node
//! that loses every server reports it through its fetch fault (`/v1/ready`).

use std::sync::Arc;
use std::time::Duration;

use async_nats::ConnectErrorKind;

use crate::security::Security;
use crate::{Disconnected, ReplicationConfig, ReplicationError, unreachable};

/// First wait between two rounds of connection attempts at start, doubled after each round.
const CONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest wait between two rounds: a server that comes up is found within a second.
const CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Connects to one of `config.servers`, retrying every server in rounds until one accepts;
/// `last_error` holds the latest failure, for the caller's timeout. An authorization violation
/// is final: retrying the same credentials cannot succeed, and a node that cannot authenticate
/// must say so rather than report the cluster unreachable.
pub(crate) async fn connect(
    config: &ReplicationConfig,
    security: &Security,
    disconnected: Disconnected,
    last_error: &parking_lot::Mutex<String>,
) -> Result<async_nats::Client, ReplicationError> {
    let servers: Vec<async_nats::ServerAddr> = config
        .servers
        .iter()
        .map(|s| s.parse().map_err(|e| unreachable(config, format!("{s}: {e}"))))
        .collect::<Result<_, _>>()?;
    let mut backoff = CONNECT_BACKOFF_MIN;
    loop {
        let disconnected = Arc::clone(&disconnected);
        let options = security.options()?.name("stemedb").event_callback(move |event| {
            let disconnected = Arc::clone(&disconnected);
            async move {
                match event {
                    async_nats::Event::Connected => *disconnected.lock() = None,
                    async_nats::Event::Disconnected => {
                        disconnected.lock().get_or_insert_with(std::time::Instant::now);
                    }
                    _ => {}
                }
            }
        });
        match options.connect(servers.clone()).await {
            Ok(client) => return Ok(client),
            Err(error) => match error.kind() {
                ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                    return Err(ReplicationError::AuthRefused {
                        servers: config.servers.join(","),
                        method: security.described().to_owned(),
                        reason: error.to_string(),
                    });
                }
                _ => {
                    let reason = error.to_string();
                    tracing::warn!(%reason, "no NATS server accepted the connection; retrying");
                    *last_error.lock() = reason;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(CONNECT_BACKOFF_MAX);
                }
            },
        }
    }
}
