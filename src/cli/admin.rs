//! `qlm admin remove (--handle H | --user U [--host H] [--feature F])` (FlexLM's lmremove)
//! and `qlm admin reload`. Both need the admin token: `--token-file PATH`, or
//! `QLM_ADMIN_TOKEN`, or the file `QLM_ADMIN_TOKEN_FILE` names; without one, exit 2.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use qlm_client::{Client, RemoveTarget, admin_token_from_env, admin_token_from_file};

use crate::connect::{failed, runtime};
use crate::{BadInput, Outcome, Report};

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Release checkouts at once: one by handle, or every checkout of a user.
    Remove {
        /// The checkout's handle (from `qlm status`).
        #[arg(long, conflicts_with = "user", required_unless_present = "user")]
        handle: Option<u64>,
        /// Every checkout of this user.
        #[arg(long)]
        user: Option<String>,
        /// Only from this host (with --user).
        #[arg(long, requires = "user")]
        host: Option<String>,
        /// Only of this feature (with --user).
        #[arg(long, requires = "user")]
        feature: Option<String>,
        /// File holding the admin token (default: QLM_ADMIN_TOKEN, QLM_ADMIN_TOKEN_FILE).
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
    },
    /// Make the leader re-read its license and options files.
    Reload {
        /// File holding the admin token (default: QLM_ADMIN_TOKEN, QLM_ADMIN_TOKEN_FILE).
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
    },
}

/// The client with the admin token, or exit 2.
pub fn admin_client(servers: Option<&str>, token_file: Option<&Path>) -> Result<Client, BadInput> {
    let client = crate::connect::client(servers)?;
    let token = match token_file {
        Some(path) => admin_token_from_file(path),
        None => admin_token_from_env(),
    }
    .map_err(|error| BadInput(error.to_string()))?;
    Ok(client.with_admin_token(token))
}

pub fn run(
    servers: Option<&str>,
    command: AdminCommand,
    out: &mut Report,
) -> Result<Outcome, BadInput> {
    match command {
        AdminCommand::Remove { handle, user, host, feature, token_file } => {
            let target = match (handle, user) {
                (Some(handle), _) => RemoveTarget::Handle(handle),
                (None, Some(user)) => RemoveTarget::Holder { user, host, feature },
                (None, None) => return Err(BadInput("give --handle or --user".into())),
            };
            let client = admin_client(servers, token_file.as_deref())?;
            runtime()?.block_on(async move {
                match client.remove(target).await {
                    Ok(released) if released.is_empty() => {
                        out.line("nothing matched; nothing released")
                    }
                    Ok(released) => {
                        let handles: Vec<String> =
                            released.iter().map(ToString::to_string).collect();
                        out.line(format!("released handle(s) {}", handles.join(", ")));
                    }
                    Err(error) => return failed(error),
                }
                Ok(Outcome::Ok)
            })
        }
        AdminCommand::Reload { token_file } => {
            let client = admin_client(servers, token_file.as_deref())?;
            runtime()?.block_on(async move {
                let reloaded = match client.reload().await {
                    Ok(reloaded) => reloaded,
                    Err(error) => return failed(error),
                };
                for refused in reloaded.license_refused.iter().chain(&reloaded.options_refused) {
                    let feature = match refused.feature.as_str() {
                        "" => String::new(),
                        feature => format!(" feature {feature}"),
                    };
                    out.line(format!(
                        "refused {}:{}{feature} {}: {}",
                        refused.file, refused.line, refused.field, refused.message
                    ));
                }
                if !reloaded.applied {
                    out.line("reload NOT applied: the options file has errors; nothing changed");
                    return Ok(Outcome::Refused);
                }
                out.line(format!(
                    "reloaded: {} pool(s) serving, {} retired still carrying seats",
                    reloaded.pools.iter().filter(|p| p.serving).count(),
                    reloaded.retired
                ));
                Ok(Outcome::Ok)
            })
        }
    }
}
