//! The record format: `[length u32 LE][CRC-32 u32 LE][postcard(Entry)]`, the CRC of the
//! encoded entry. A segment is a run of these after its magic.

use crate::Entry;
use crate::store::decode;

/// Length and CRC before each record's bytes.
pub(super) const HEADER_BYTES: usize = 8;
/// The largest record accepted when reading (an entry holds at most a batch of commands; a
/// length beyond this is damage, not data).
const MAX_RECORD_BYTES: u32 = 256 * 1024 * 1024;

/// Appends `entry`'s record to `buf`; returns the record's whole length (header included).
pub(super) fn encode(entry: &Entry, buf: &mut Vec<u8>) -> Result<u32, String> {
    let offset = buf.len();
    buf.extend_from_slice(&[0; HEADER_BYTES]);
    postcard::to_io(entry, &mut *buf).map_err(|e| format!("encoding an entry: {e}"))?;
    let len = buf.len() - offset - HEADER_BYTES;
    let crc = crc32fast::hash(&buf[offset + HEADER_BYTES..]);
    let len32 = u32::try_from(len)
        .ok()
        .filter(|l| *l <= MAX_RECORD_BYTES)
        .ok_or_else(|| format!("an entry of {len} bytes"))?;
    buf[offset..offset + 4].copy_from_slice(&len32.to_le_bytes());
    buf[offset + 4..offset + 8].copy_from_slice(&crc.to_le_bytes());
    Ok((len + HEADER_BYTES) as u32)
}

/// Decodes the record at the start of `bytes`: the entry and the record's whole length.
pub(super) fn parse(bytes: &[u8]) -> Result<(Entry, usize), String> {
    let header = bytes.get(..HEADER_BYTES).ok_or("a record header cut short")?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD_BYTES {
        return Err(format!("a record length of {len} bytes"));
    }
    let end = HEADER_BYTES + len as usize;
    let payload = bytes.get(HEADER_BYTES..end).ok_or("a record cut short")?;
    if crc32fast::hash(payload) != crc {
        return Err("a record's checksum does not match".to_string());
    }
    let entry: Entry = decode(payload).map_err(|e| format!("a record does not decode: {e}"))?;
    Ok((entry, end))
}
