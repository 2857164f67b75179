//! The checks on what C passes in: pointers (NULL, alignment), strings (a bounded scan for
//! the NUL, UTF-8, a length limit) and numbers (ranges). A refusal names the argument and
//! its limit and never repeats the argument's content, which may be anything.

use std::ffi::c_char;
use std::time::{Duration, SystemTime};

use crate::status::Failure;

/// Longest `feature` argument, in bytes without the NUL.
pub const QLM_MAX_FEATURE: usize = 64;
/// Longest `version` argument, in bytes without the NUL.
pub const QLM_MAX_VERSION: usize = 32;
/// Longest `search_path` or `servers` argument, in bytes without the NUL.
pub const QLM_MAX_SEARCH_PATH: usize = 64 * 1024;
/// Longest `public_key` argument, in bytes without the NUL.
pub const QLM_MAX_KEY_TEXT: usize = 4 * 1024;
/// Longest `vendor_var` argument (an environment variable's name), in bytes without the NUL.
pub const QLM_MAX_VAR_NAME: usize = 256;

/// Seats (or tokens) one checkout may ask for.
pub const QLM_MAX_COUNT: u32 = 1_000_000;

/// Longest wait in a queue (`wait_ms`): 31 days.
pub const QLM_MAX_WAIT_MS: i64 = 31 * 24 * 3600 * 1000;

/// Latest borrow end (`borrow_until_unix_s`): 9999-12-31T23:59:59Z.
pub const QLM_MAX_BORROW_UNIX_S: i64 = 253_402_300_799;

/// The string at `ptr`, which must not be NULL: at most `limit` bytes before its NUL, UTF-8.
///
/// # Safety
/// `ptr` is NULL or points to readable bytes up to a NUL or past `limit` bytes, whichever
/// comes first (no more is read).
pub unsafe fn text<'a>(ptr: *const c_char, name: &str, limit: usize) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("`{name}` is NULL")));
    }
    // A bounded strlen: never reads more than limit + 1 bytes.
    let mut len = 0;
    // SAFETY: the caller promises the bytes up to the NUL or limit + 1 are readable, and the
    // loop stops at the first of the two.
    while len <= limit && unsafe { *ptr.add(len) } != 0 {
        len += 1;
    }
    if len > limit {
        return Err(Failure::invalid(format!("`{name}` is longer than {limit} bytes")));
    }
    // SAFETY: the `len` bytes before the NUL were just read.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    std::str::from_utf8(bytes).map_err(|e| {
        Failure::invalid(format!("`{name}` is not UTF-8 (bad byte at offset {})", e.valid_up_to()))
    })
}

/// Like [`text`], but NULL is `None`.
///
/// # Safety
/// As for [`text`].
pub unsafe fn optional_text<'a>(
    ptr: *const c_char,
    name: &str,
    limit: usize,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() { Ok(None) } else { unsafe { text(ptr, name, limit) }.map(Some) }
}

/// Like [`text`], and not empty.
///
/// # Safety
/// As for [`text`].
pub unsafe fn non_empty_text<'a>(
    ptr: *const c_char,
    name: &str,
    limit: usize,
) -> Result<&'a str, Failure> {
    let text = unsafe { text(ptr, name, limit) }?;
    if text.is_empty() {
        return Err(Failure::invalid(format!("`{name}` is empty")));
    }
    Ok(text)
}

/// Checks that `ptr`, where a result is written, is neither NULL nor misaligned for `T`.
pub fn out_pointer<T>(ptr: *mut T, name: &str) -> Result<(), Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("`{name}` is NULL")));
    }
    if !(ptr as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(Failure::invalid(format!(
            "`{name}` is not aligned to {} bytes",
            std::mem::align_of::<T>()
        )));
    }
    Ok(())
}

/// `count` in 1..=[`QLM_MAX_COUNT`].
pub fn count(count: u32) -> Result<u32, Failure> {
    if !(1..=QLM_MAX_COUNT).contains(&count) {
        return Err(Failure::invalid(format!(
            "`count` is {count}; it must be 1..={QLM_MAX_COUNT}"
        )));
    }
    Ok(count)
}

/// `wait_ms`: negative for no queueing, else a wait of at most [`QLM_MAX_WAIT_MS`].
pub fn wait(wait_ms: i64) -> Result<Option<Duration>, Failure> {
    match wait_ms {
        ..0 => Ok(None),
        0..=QLM_MAX_WAIT_MS => Ok(Some(Duration::from_millis(wait_ms.unsigned_abs()))),
        _ => Err(Failure::invalid(format!(
            "`wait_ms` is {wait_ms}; it must be negative (no queueing) or 0..={QLM_MAX_WAIT_MS}"
        ))),
    }
}

/// `borrow_until_unix_s`: 0 for no borrow, else a time in 1..=[`QLM_MAX_BORROW_UNIX_S`].
pub fn borrow_until(unix_s: i64) -> Result<Option<SystemTime>, Failure> {
    match unix_s {
        0 => Ok(None),
        1..=QLM_MAX_BORROW_UNIX_S => {
            Ok(Some(SystemTime::UNIX_EPOCH + Duration::from_secs(unix_s.unsigned_abs())))
        }
        _ => Err(Failure::invalid(format!(
            "`borrow_until_unix_s` is {unix_s}; it must be 0 (no borrow) or \
             1..={QLM_MAX_BORROW_UNIX_S}"
        ))),
    }
}

/// Copies `text` into the C buffer `dest` (NUL-terminated, cut at a character boundary to
/// fit).
pub fn copy_into(dest: &mut [c_char], text: &str) {
    let Some(room) = dest.len().checked_sub(1) else { return };
    let mut end = text.len().min(room);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    for (slot, &byte) in dest.iter_mut().zip(text.as_bytes()[..end].iter()) {
        *slot = byte as c_char;
    }
    dest[end] = 0;
}
