//! Reading a license or options file with a size limit, and saying how large a refused one is.

use std::fmt;
use std::fs::File;
use std::io::{self, Read as _};
use std::path::Path;

/// A file larger than its limit: its size when the file system knows it (a regular file), and
/// the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Oversize {
    /// The file's length; `None` for a device or a pipe, which has none.
    pub size: Option<u64>,
    pub limit: u64,
}

impl fmt::Display for Oversize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.size {
            Some(size) => write!(f, "is {size} bytes, more than the {} bytes allowed", self.limit),
            None => write!(f, "is more than the {} bytes allowed", self.limit),
        }
    }
}

/// The bytes of the file at `path` if it has at most `limit` of them (no more than one byte
/// past the limit is read), else how large it is.
pub(crate) fn read_at_most(path: &Path, limit: u64) -> io::Result<Result<Vec<u8>, Oversize>> {
    let file = File::open(path)?;
    let mut bytes = Vec::new();
    (&file).take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 <= limit {
        return Ok(Ok(bytes));
    }
    let size = file.metadata().ok().filter(|meta| meta.is_file()).map(|meta| meta.len());
    Ok(Err(Oversize { size, limit }))
}
