//! This machine's host ids, in the forms a vendor binds a node-locked line to (`hostid=` of a
//! `count=uncounted` line; `qlm_license::hostid` describes the forms).
//!
//! - every ethernet address of a non-loopback interface, as 12 lowercase hex digits
//!   (`/sys/class/net/*/address`), FlexLM's form;
//! - `HOSTNAME=<the kernel's host name>`, FlexLM's form;
//! - `MACHINE_ID=<the systemd machine id>` (`/etc/machine-id`, else
//!   `/var/lib/dbus/machine-id`), QuorumLM's own: FlexLM has no such host id.
//!
//! A source that is missing or unreadable (a container without `/sys/class/net`, a system
//! without systemd) gives no id rather than an error: the ids are only ever compared against a
//! line's list, and an id that is absent simply does not match.

use std::fs;
use std::path::Path;

use qlm_license::ethernet_address;
use qlm_license::hostid::{HOSTNAME_PREFIX, MACHINE_ID_HEX_DIGITS, MACHINE_ID_PREFIX};

/// Where the kernel lists network interfaces.
const NET_CLASS_DIR: &str = "/sys/class/net";

/// Most interfaces read: a host with thousands (container bridges) is not slowed down.
pub const MAX_INTERFACES: usize = 1024;

/// `type` of a loopback interface in `/sys/class/net/*/type` (ARPHRD_LOOPBACK).
const ARPHRD_LOOPBACK: &str = "772";

/// Files a small system value is read from are never larger than this.
const MAX_SMALL_FILE_BYTES: u64 = 4096;

/// The files a machine id is kept in, in the order systemd reads them.
const MACHINE_ID_FILES: [&str; 2] = ["/etc/machine-id", "/var/lib/dbus/machine-id"];

/// Where the kernel keeps the host name.
const HOST_NAME_FILES: [&str; 2] = ["/proc/sys/kernel/hostname", "/etc/hostname"];

/// This machine's host ids: ethernet addresses (sorted), then `HOSTNAME=`, then `MACHINE_ID=`;
/// each present only when it can be read.
pub fn local_host_ids() -> Vec<String> {
    let mut ids = ethernet_addresses(Path::new(NET_CLASS_DIR));
    ids.extend(host_name().map(|name| format!("{HOSTNAME_PREFIX}{name}")));
    ids.extend(machine_id().map(|id| format!("{MACHINE_ID_PREFIX}{id}")));
    ids
}

/// The ethernet addresses of the interfaces under `net_dir`: not loopback, not all zeros,
/// 12 lowercase hex digits, sorted, without repeats.
pub fn ethernet_addresses(net_dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(net_dir) else {
        return Vec::new();
    };
    let mut addresses: Vec<String> = entries
        .flatten()
        .take(MAX_INTERFACES)
        .filter(|entry| {
            let kind = read_small(&entry.path().join("type"));
            entry.file_name() != "lo" && kind.as_deref() != Some(ARPHRD_LOOPBACK)
        })
        .filter_map(|entry| read_small(&entry.path().join("address")))
        .filter_map(|address| ethernet_address(&address))
        .filter(|address| address.bytes().any(|b| b != b'0'))
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
}

/// The kernel's host name, if it can be read and is one.
fn host_name() -> Option<String> {
    HOST_NAME_FILES.iter().filter_map(|path| read_small(Path::new(path))).find(|name| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    })
}

/// The machine id, lowercase, if a file holds one.
fn machine_id() -> Option<String> {
    MACHINE_ID_FILES
        .iter()
        .filter_map(|path| read_small(Path::new(path)))
        .map(|id| id.to_ascii_lowercase())
        .find(|id| id.len() == MACHINE_ID_HEX_DIGITS && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The trimmed text of a small file; `None` if it cannot be read, is not UTF-8 or is larger
/// than a system value ever is.
fn read_small(path: &Path) -> Option<String> {
    use std::io::Read as _;
    let file = fs::File::open(path).ok()?;
    let mut text = String::new();
    file.take(MAX_SMALL_FILE_BYTES + 1).read_to_string(&mut text).ok()?;
    (text.len() as u64 <= MAX_SMALL_FILE_BYTES).then(|| text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interface(dir: &Path, name: &str, address: &str, kind: &str) {
        let path = dir.join(name);
        fs::create_dir(&path).unwrap();
        fs::write(path.join("address"), format!("{address}\n")).unwrap();
        fs::write(path.join("type"), format!("{kind}\n")).unwrap();
    }

    #[test]
    fn addresses_skip_loopback_and_zero_and_are_normalized() {
        let dir = tempfile::tempdir().unwrap();
        interface(dir.path(), "lo", "00:00:00:00:00:00", "772");
        interface(dir.path(), "eth1", "02:FC:00:00:00:02", "1");
        interface(dir.path(), "eth0", "02:fc:00:00:00:01", "1");
        interface(dir.path(), "lo2", "02:fc:00:00:00:09", "772");
        interface(dir.path(), "dummy0", "00:00:00:00:00:00", "1");
        interface(dir.path(), "tun0", "", "65534");
        interface(dir.path(), "bond0", "02:fc:00:00:00:01", "1");
        assert_eq!(ethernet_addresses(dir.path()), ["02fc00000001", "02fc00000002"]);
    }

    #[test]
    fn a_missing_directory_gives_no_address() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ethernet_addresses(&dir.path().join("absent")).is_empty());
    }

    #[test]
    fn every_local_id_is_in_a_form_a_line_may_name() {
        for id in local_host_ids() {
            let kind = qlm_license::check_host_id(&id);
            assert!(kind.as_ref().is_ok_and(|k| k.is_machine_id()), "{id}: {kind:?}");
        }
    }
}
