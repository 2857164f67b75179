//! The host ids of a `hostid=` list: their forms, and whether a machine's ids match them.
//!
//! | form | example | FlexLM's spelling |
//! |---|---|---|
//! | ethernet address | `001a2b3c4d5e`, `00:1A:2B:3C:4D:5E`, `00-1a-2b-3c-4d-5e` | 12 hex digits, the same |
//! | host name | `HOSTNAME=build7` | the same |
//! | machine id | `MACHINE_ID=3d1219c7c4c5404aaa1f6d2a48adfda4` (`/etc/machine-id`) | none: FlexLM has no such host id, so this one is QuorumLM's own |
//! | any other word | `lic-server-1` | a server's `qlmd --hostid`, matched exactly |
//!
//! An ethernet address matches in any of its spellings (case, `:` or `-`), a host name
//! without regard to case (DNS names have none), a machine id without regard to the case of
//! its hex digits. The list is kept as written, since the signature covers what is written;
//! only the comparison normalizes.

use std::collections::BTreeSet;

use crate::fields::shown;
use crate::pool::HostId;

/// Prefix of a host name host id (FlexLM's spelling).
pub const HOSTNAME_PREFIX: &str = "HOSTNAME=";

/// Prefix of a machine id host id (`/etc/machine-id`; QuorumLM's own spelling).
pub const MACHINE_ID_PREFIX: &str = "MACHINE_ID=";

/// Hex digits of a systemd machine id.
pub const MACHINE_ID_HEX_DIGITS: usize = 32;

/// Longest host name, in characters (DNS's limit).
pub const MAX_HOST_NAME_CHARS: usize = 253;

/// What kind of machine identity a host id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostIdKind {
    /// An ethernet (MAC) address.
    Ethernet,
    /// `HOSTNAME=`.
    HostName,
    /// `MACHINE_ID=`.
    MachineId,
    /// A bare word: a license server's `--hostid`.
    Word,
}

impl HostIdKind {
    /// Whether an application can prove this id on its own machine (`qlm hostid` prints
    /// these); a bare word is only ever a server's configured name.
    pub fn is_machine_id(self) -> bool {
        self != HostIdKind::Word
    }
}

/// The ethernet address `id` spells, as 12 lowercase hex digits, if it is one: 12 hex digits,
/// or 6 pairs separated all by `:` or all by `-`, in either case.
pub fn ethernet_address(id: &str) -> Option<String> {
    let hex: String = if id.len() == 12 {
        id.to_owned()
    } else if id.len() == 17 {
        let separator = id.chars().nth(2).filter(|&c| c == ':' || c == '-')?;
        let pairs: Vec<&str> = id.split(separator).collect();
        if pairs.len() != 6 || pairs.iter().any(|pair| pair.len() != 2) {
            return None;
        }
        pairs.concat()
    } else {
        return None;
    };
    hex.bytes().all(|b| b.is_ascii_hexdigit()).then(|| hex.to_ascii_lowercase())
}

/// Splits `KIND=value` when the kind is `prefix`, in any case.
fn strip_kind<'a>(id: &'a str, prefix: &str) -> Option<&'a str> {
    let head = id.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &id[prefix.len()..])
}

/// Checks one entry of a `hostid=` list and says what kind of id it is.
pub fn check_host_id(id: &str) -> Result<HostIdKind, String> {
    if let Some(name) = strip_kind(id, HOSTNAME_PREFIX) {
        let ok = (1..=MAX_HOST_NAME_CHARS).contains(&name.chars().count())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
        return match ok {
            true => Ok(HostIdKind::HostName),
            false => Err(format!(
                "`{}` is not a host name (letters, digits, `-`, `.`, `_`; at most \
                 {MAX_HOST_NAME_CHARS})",
                shown(id)
            )),
        };
    }
    if let Some(hex) = strip_kind(id, MACHINE_ID_PREFIX) {
        let ok = hex.len() == MACHINE_ID_HEX_DIGITS && hex.bytes().all(|b| b.is_ascii_hexdigit());
        return match ok {
            true => Ok(HostIdKind::MachineId),
            false => Err(format!(
                "`{}` is not a machine id ({MACHINE_ID_HEX_DIGITS} hex digits, as in \
                 /etc/machine-id)",
                shown(id)
            )),
        };
    }
    if ethernet_address(id).is_some() {
        return Ok(HostIdKind::Ethernet);
    }
    if let Some((kind, _)) = id.split_once('=') {
        return Err(format!(
            "unknown kind of host id `{}=` (known: {HOSTNAME_PREFIX}name, \
             {MACHINE_ID_PREFIX}hex, an ethernet address as 12 hex digits, or a server's \
             --hostid word)",
            shown(kind)
        ));
    }
    Ok(HostIdKind::Word)
}

/// The form two spellings of the same id share: what [`HostId::matches`] compares.
pub fn comparable(id: &str) -> String {
    if let Some(name) = strip_kind(id, HOSTNAME_PREFIX) {
        return format!("{HOSTNAME_PREFIX}{}", name.to_ascii_lowercase());
    }
    if let Some(hex) = strip_kind(id, MACHINE_ID_PREFIX) {
        return format!("{MACHINE_ID_PREFIX}{}", hex.to_ascii_lowercase());
    }
    ethernet_address(id).unwrap_or_else(|| id.to_owned())
}

impl HostId {
    /// Whether a machine with these ids may use what the line grants: always for `ANY`, else
    /// when one of the machine's ids is one of the list's, in any spelling of it.
    pub fn matches(&self, local_ids: &[String]) -> bool {
        match self {
            HostId::Any => true,
            HostId::List(listed) => {
                let listed: BTreeSet<String> = listed.iter().map(|id| comparable(id)).collect();
                local_ids.iter().any(|id| listed.contains(&comparable(id)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(ids: &[&str]) -> HostId {
        HostId::List(ids.iter().map(|id| id.to_string()).collect())
    }

    fn local(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn ethernet_addresses_are_read_in_every_spelling() {
        for spelling in ["001a2b3c4d5e", "001A2B3C4D5E", "00:1a:2b:3c:4d:5e", "00-1A-2b-3C-4d-5E"] {
            assert_eq!(ethernet_address(spelling).as_deref(), Some("001a2b3c4d5e"), "{spelling}");
        }
        for not in ["001a2b3c4d5", "001a2b3c4d5g", "00:1a-2b:3c:4d:5e", "001:a2b:3c:4d:5e", "00:1a"]
        {
            assert_eq!(ethernet_address(not), None, "{not}");
        }
    }

    #[test]
    fn each_form_is_recognized_and_bad_ones_are_refused() {
        assert_eq!(check_host_id("00:1a:2b:3c:4d:5e"), Ok(HostIdKind::Ethernet));
        assert_eq!(check_host_id("HOSTNAME=build7"), Ok(HostIdKind::HostName));
        assert_eq!(check_host_id("hostname=Build7.lan"), Ok(HostIdKind::HostName));
        let machine = format!("MACHINE_ID={}", "3d1219c7".repeat(4));
        assert_eq!(check_host_id(&machine), Ok(HostIdKind::MachineId));
        assert_eq!(check_host_id("lic-server-1"), Ok(HostIdKind::Word));
        for (bad, needle) in [
            ("HOSTNAME=", "not a host name"),
            ("HOSTNAME=a/b", "not a host name"),
            ("MACHINE_ID=abc", "not a machine id"),
            ("MACHINE_ID=zz", "not a machine id"),
            ("ETHER=001a2b3c4d5e", "unknown kind of host id `ETHER=`"),
        ] {
            let e = check_host_id(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn a_list_matches_any_spelling_of_one_of_its_ids() {
        let line = list(&["HOSTNAME=build7", "00:1A:2B:3C:4D:5E"]);
        assert!(line.matches(&local(&["001a2b3c4d5e"])));
        assert!(line.matches(&local(&["0242ac110002", "HOSTNAME=BUILD7"])));
        assert!(!line.matches(&local(&["0242ac110002", "HOSTNAME=build8"])));
        assert!(!line.matches(&local(&[])));
        assert!(HostId::Any.matches(&local(&[])));
        let machine = format!("MACHINE_ID={}", "3D1219C7".repeat(4));
        let bound = list(&[machine.as_str()]);
        assert!(bound.matches(&local(&[&format!("MACHINE_ID={}", "3d1219c7".repeat(4))])));
        assert!(!bound.matches(&local(&["3d1219c73d1219c73d1219c73d1219c7"])));
    }

    #[test]
    fn bare_words_match_exactly() {
        let line = list(&["lic-server-1"]);
        assert!(line.matches(&local(&["lic-server-1"])));
        assert!(!line.matches(&local(&["LIC-SERVER-1"])));
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #[test]
            fn every_spelling_of_an_address_is_the_same_address(
                bytes in proptest::array::uniform6(any::<u8>()),
                upper in any::<bool>(),
                separator in prop_oneof![Just(""), Just(":"), Just("-")],
            ) {
                let pairs: Vec<String> = bytes.iter().map(|b| match upper {
                    true => format!("{b:02X}"),
                    false => format!("{b:02x}"),
                }).collect();
                let spelled = pairs.join(separator);
                let plain: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                prop_assert_eq!(ethernet_address(&spelled), Some(plain.clone()));
                prop_assert_eq!(check_host_id(&spelled), Ok(HostIdKind::Ethernet));
                let line = HostId::List([spelled].into());
                prop_assert!(line.matches(&[plain]));
            }

            #[test]
            fn no_text_makes_the_checks_panic(id in "\\PC{0,40}") {
                let _ = check_host_id(&id);
                let _ = comparable(&id);
                let _ = ethernet_address(&id);
            }
        }
    }
}
