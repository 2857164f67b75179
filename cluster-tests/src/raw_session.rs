//! Sessions opened through the raw gRPC API, as the tests that bypass the client library hold
//! them.

use qlm_proto::v1;

/// A session opened through the raw gRPC API: its public id and the secret its requests
/// present. Derefs to the id, which is what status views and report lines show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawSession {
    pub id: String,
    pub secret: String,
}

impl std::ops::Deref for RawSession {
    type Target = str;

    fn deref(&self) -> &str {
        &self.id
    }
}

impl From<v1::OpenSessionResponse> for RawSession {
    fn from(opened: v1::OpenSessionResponse) -> RawSession {
        RawSession { id: opened.session_id, secret: opened.session_secret }
    }
}
