//! The public proto files generate clients in other languages, as docs/CLIENTS.md says: the
//! language options are set, and protoc (the vendored one the build uses) turns the four
//! public files into Java, C# and Python with the packages the page names.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files a client is generated from; raft.proto is internal to the cluster.
const PUBLIC: [&str; 4] = ["common", "license", "status", "admin"];

fn proto_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto")
}

#[test]
fn every_public_file_names_its_package_in_each_language() {
    for name in PUBLIC {
        let path = proto_root().join(format!("quorumlm/v1/{name}.proto"));
        let text = std::fs::read_to_string(&path).unwrap();
        for option in [
            "option java_package = \"com.quorumlm.v1\";",
            "option java_multiple_files = true;",
            "option csharp_namespace = \"QuorumLM.V1\";",
            "option go_package = \"github.com/quorumlm/quorumlm/gen/go/quorumlm/v1;quorumlmv1\";",
        ] {
            assert!(text.contains(option), "{}: missing `{option}`", path.display());
        }
    }
}

#[test]
fn protoc_generates_java_csharp_and_python_from_the_public_files() {
    let out = tempfile::tempdir().unwrap();
    let out = out.path();
    let files: Vec<String> = PUBLIC.iter().map(|n| format!("quorumlm/v1/{n}.proto")).collect();
    let protoc = protoc_bin_vendored::protoc_bin_path().unwrap();
    for (flag, dir) in [("--java_out", "java"), ("--csharp_out", "csharp"), ("--python_out", "py")]
    {
        std::fs::create_dir_all(out.join(dir)).unwrap();
        let status = Command::new(&protoc)
            .arg(format!("-I{}", proto_root().display()))
            .arg(format!("{flag}={}", out.join(dir).display()))
            .args(&files)
            .status()
            .unwrap();
        assert!(status.success(), "protoc {flag} failed");
    }
    let checkout = out.join("java/com/quorumlm/v1/CheckoutRequest.java");
    assert!(checkout.exists(), "java_multiple_files: one class per message");
    let csharp = std::fs::read_to_string(out.join("csharp/License.cs")).unwrap();
    assert!(csharp.contains("namespace QuorumLM.V1"));
    assert!(out.join("py/quorumlm/v1/license_pb2.py").exists());
}
