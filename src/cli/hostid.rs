//! `qlm hostid [--json]`: this machine's host ids, in the forms a vendor binds a node-locked
//! line (`count=uncounted hostid=...`) to, as `lmutil lmhostid` prints FlexLM's: one per line,
//! ethernet addresses first (12 hex digits), then `HOSTNAME=` and `MACHINE_ID=`. The user sends
//! them to the vendor, who puts one or more in the line's `hostid=` list.
//!
//! Exit 0, even when no id can be read (a note then goes to stderr): the command is a report.

use qlm_client::hostid::local_host_ids;
use qlm_license::{HostIdKind, check_host_id};
use serde::Serialize;

use crate::{BadInput, Outcome, Report};

#[derive(Serialize)]
struct JsonHostId {
    /// `ethernet`, `hostname` or `machine_id`.
    kind: &'static str,
    /// As it goes into a `hostid=` list.
    id: String,
}

pub fn run(json: bool, out: &mut Report) -> Result<Outcome, BadInput> {
    let ids = local_host_ids();
    if ids.is_empty() {
        eprintln!(
            "qlm: no host id of this machine could be read (/sys/class/net, the host name, \
             /etc/machine-id)"
        );
    }
    if json {
        let ids: Vec<JsonHostId> =
            ids.into_iter().map(|id| JsonHostId { kind: kind_of(&id), id }).collect();
        out.line(serde_json::to_string_pretty(&serde_json::json!({ "host_ids": ids }))?);
    } else {
        for id in ids {
            out.line(id);
        }
    }
    Ok(Outcome::Ok)
}

fn kind_of(id: &str) -> &'static str {
    match check_host_id(id) {
        Ok(HostIdKind::Ethernet) => "ethernet",
        Ok(HostIdKind::HostName) => "hostname",
        Ok(HostIdKind::MachineId) => "machine_id",
        Ok(HostIdKind::Word) | Err(_) => "other",
    }
}
