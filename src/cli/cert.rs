//! `qlm cert`: a cluster CA and node certificates, for turning TLS on (docs/TLS.md).
//!
//! ```text
//! qlm cert ca --out DIR                       # DIR/ca.pem, DIR/ca.key (0600)
//! qlm cert node --ca DIR --name NAME --host HOST[,HOST...] --out DIR   # NAME.pem, NAME.key
//! ```
//!
//! Nothing is overwritten: a file that exists makes the command write nothing and exit 2.

use std::path::PathBuf;

use clap::Subcommand;

use qlm_net::tls::certs::{DEFAULT_CA_DAYS, DEFAULT_NODE_DAYS, make_ca, make_node_cert};

use crate::{BadInput, Outcome, Report};

#[derive(Subcommand)]
pub enum CertCommand {
    /// Make a new cluster CA: DIR/ca.pem (give it to nodes and clients) and DIR/ca.key
    /// (mode 0600; keep it off the nodes).
    Ca {
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "QuorumLM cluster CA")]
        name: String,
        /// Days the CA is valid.
        #[arg(long, default_value_t = DEFAULT_CA_DAYS)]
        days: u32,
    },
    /// Make a node certificate signed by the CA, good as TLS server and client (peer links):
    /// DIR/NAME.pem and DIR/NAME.key (mode 0600).
    Node {
        /// The CA directory (holding ca.pem and ca.key).
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The node's name: the certificate's common name and the files' names.
        #[arg(long)]
        name: String,
        /// Every host name and IP address clients and peers reach this node by.
        #[arg(long, value_name = "HOST[,HOST...]", value_delimiter = ',', required = true)]
        host: Vec<String>,
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = DEFAULT_NODE_DAYS)]
        days: u32,
    },
}

pub fn run(command: CertCommand, report: &mut Report) -> Result<Outcome, BadInput> {
    match command {
        CertCommand::Ca { out, name, days } => {
            let files = make_ca(&out, &name, days)?;
            report.line(format!(
                "wrote {} (the CA certificate: give it to every node, --peer-tls-ca, and to clients, --tls-ca)",
                files.cert.display()
            ));
            report.line(format!(
                "wrote {} (the CA key, mode 0600: it signs node certificates; keep it off the nodes)",
                files.key.display()
            ));
        }
        CertCommand::Node { ca, name, host, out, days } => {
            let hosts: Vec<String> =
                host.iter().map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect();
            let files = make_node_cert(&ca, &name, &hosts, &out, days)?;
            report.line(format!(
                "wrote {} (certificate of {name} for {}, server and client use)",
                files.cert.display(),
                hosts.join(", ")
            ));
            report.line(format!("wrote {} (its key, mode 0600)", files.key.display()));
        }
    }
    Ok(Outcome::Ok)
}
