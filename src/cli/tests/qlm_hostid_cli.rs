//! `qlm hostid`, the real binary: this machine's ids, as a vendor binds a node-locked line to
//! them, in text and JSON.

use std::process::Command;

use qlm_client::hostid::local_host_ids;

fn qlm_hostid(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_qlm"))
        .arg("hostid")
        .args(args)
        .env_remove("QLM_SERVERS")
        .output()
        .unwrap();
    (output.status.code().unwrap(), String::from_utf8(output.stdout).unwrap())
}

#[test]
fn hostid_prints_this_machines_ids_one_per_line() {
    let (code, out) = qlm_hostid(&[]);
    assert_eq!(code, 0);
    let printed: Vec<&str> = out.lines().collect();
    assert_eq!(printed, local_host_ids(), "{out}");
    assert!(printed.iter().any(|id| id.starts_with("HOSTNAME=")), "{out}");
    for id in printed {
        let kind = qlm_license::check_host_id(id);
        assert!(kind.as_ref().is_ok_and(|k| k.is_machine_id()), "`{id}`: {kind:?}");
    }
}

#[test]
fn hostid_json_names_each_kind() {
    let (code, out) = qlm_hostid(&["--json"]);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ids = doc["host_ids"].as_array().unwrap();
    assert_eq!(ids.len(), local_host_ids().len(), "{out}");
    for entry in ids {
        let (kind, id) = (entry["kind"].as_str().unwrap(), entry["id"].as_str().unwrap());
        let expected = match id {
            _ if id.starts_with("HOSTNAME=") => "hostname",
            _ if id.starts_with("MACHINE_ID=") => "machine_id",
            _ => "ethernet",
        };
        assert_eq!(kind, expected, "{out}");
    }
}
