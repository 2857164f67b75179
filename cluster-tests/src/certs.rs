//! The certificates of a TLS test cluster: a CA made for it and one certificate per node.

use std::path::{Path, PathBuf};

use qlm_net::tls::certs::{CertFiles, make_ca, make_node_cert};

/// The certificate files of a TLS test cluster.
#[derive(Clone, Debug)]
pub struct ClusterTls {
    /// The CA directory (`ca.pem`, `ca.key`).
    pub ca_dir: PathBuf,
    pub ca: CertFiles,
    /// Each node's certificate, by id (index id - 1).
    pub nodes: Vec<CertFiles>,
}

impl ClusterTls {
    /// A CA in `<dir>/tls-ca` and certificates for nodes 1..=`total` in `<dir>/tls`, valid for
    /// the loopback addresses.
    pub(crate) fn make(dir: &Path, total: u64) -> ClusterTls {
        let ca_dir = dir.join("tls-ca");
        let ca = make_ca(&ca_dir, "test cluster CA", 2).expect("a test CA");
        let hosts = ["127.0.0.1".to_owned(), "localhost".to_owned()];
        let nodes = (1..=total)
            .map(|id| {
                make_node_cert(&ca_dir, &format!("node{id}"), &hosts, &dir.join("tls"), 2)
                    .expect("a node certificate")
            })
            .collect();
        ClusterTls { ca_dir, ca, nodes }
    }
}
