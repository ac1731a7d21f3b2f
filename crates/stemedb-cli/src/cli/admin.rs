//! The administrator rule for trust changes, as `stemedb sign trust` and `stemedb verify` apply
//! it: the signer must be listed in the configuration's `votes.admins`.
//!
//! A node applies the same rule when a change is submitted (`Node::submit_trust`), so a change
//! that passes here is one a node with this configuration admits. The CLI refuses a non-admin
//! signer outright, rather than warning, because exit status 0 promises exactly that.

use stemedb::protocol::TrustChange;
use stemedb_server::ServerConfig as Config;

use super::CliError;

/// Returns `Ok` if and only if `change`'s signer is one of `config`'s administrators.
pub(crate) fn require_admin(change: &TrustChange, config: &Config) -> Result<(), CliError> {
    // Config::load validated the list, so this parse cannot fail; report it if it does.
    let admins = config.votes.admin_set().map_err(CliError::Input)?;
    if admins.contains(&change.admin) {
        Ok(())
    } else {
        Err(CliError::NotAdmin {
            admin: change.admin,
            admins_configured: admins.len(),
        })
    }
}
