//! This thread's last failure, as C reads it: `qlm_last_error`, `qlm_last_denial_reason`,
//! `qlm_last_denial_holder_count`, `qlm_last_denial_holder`.
//!
//! Per thread, so that two threads' failures never mix. A failed call replaces the record
//! (a failure other than a denial clears the denial); a successful call leaves it alone, so
//! a program may look at it after any later successful call. The strings are owned here:
//! a pointer handed out stays valid until this thread's next failed call.

use std::cell::RefCell;
use std::ffi::{CString, c_char};

use crate::status::Failure;

/// Longest message kept (bytes); a longer one is cut at a character boundary. Messages may
/// carry text from servers and files, which must not grow without bound.
const MAX_MESSAGE: usize = 4096;

/// Longest holder line or reason kept (bytes).
const MAX_LINE: usize = 512;

#[derive(Default)]
struct Record {
    message: Option<CString>,
    reason: Option<CString>,
    holders: Vec<CString>,
}

thread_local! {
    static LAST: RefCell<Record> = RefCell::new(Record::default());
}

static EMPTY: &[u8] = b"\0";

/// Records `failure` as this thread's last.
pub fn record(failure: &Failure) {
    let message = c_text(&format!("{:?}: {}", failure.status, failure.message), MAX_MESSAGE);
    let (reason, holders) = match &failure.denial {
        Some(denial) => (
            Some(c_text(&denial.reason, MAX_LINE)),
            denial.holders.iter().map(|h| c_text(h, MAX_LINE)).collect(),
        ),
        None => (None, Vec::new()),
    };
    // A thread being torn down has no record to keep; nothing to do then.
    let _ = LAST.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            *last = Record { message: Some(message), reason, holders };
        }
    });
}

/// `text` cut to `limit` bytes at a character boundary, without NUL bytes, as a C string.
pub fn c_text(text: &str, limit: usize) -> CString {
    let mut end = text.len().min(limit);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let bytes: Vec<u8> = text.as_bytes()[..end].iter().copied().filter(|&b| b != 0).collect();
    CString::new(bytes).unwrap_or_default()
}

fn read<T>(f: impl FnOnce(&Record) -> T, default: T) -> T {
    LAST.try_with(|last| last.try_borrow().map(|r| f(&r)).ok()).ok().flatten().unwrap_or(default)
}

fn empty() -> *const c_char {
    EMPTY.as_ptr().cast()
}

/// The message of this thread's last failed `qlm_*` call: the status's name, then what
/// failed, naming the argument and its limit for a refused argument. `""` when no call
/// on this thread has failed.
///
/// Ownership: the library's; do not free it. Valid until this thread's next failed call.
/// Thread-safety: each thread has its own.
#[unsafe(no_mangle)]
pub extern "C" fn qlm_last_error() -> *const c_char {
    let found = std::panic::catch_unwind(|| read(|r| r.message.as_ref().map(|m| m.as_ptr()), None));
    found.ok().flatten().unwrap_or_else(empty)
}

/// The reason of this thread's last failure when it was `QLM_ERR_DENIED`, as the server
/// names it without its prefix: `"ALL_IN_USE"`, `"NO_SUCH_FEATURE"`, `"VERSION_TOO_HIGH"`,
/// `"EXPIRED"`, `"NOT_STARTED"`, `"EXCLUDED"`, `"RESERVED_FOR_OTHERS"`, `"MAX_REACHED"`,
/// `"COUNT_TOO_HIGH"`, `"BORROW_NOT_ALLOWED"`, `"ALREADY_HOLDING"`; for a queued request that
/// left its queue, `"LEFT_CAUSE_CANCELLED"` or `"LEFT_CAUSE_SESSION_ENDED"`. `""` otherwise.
///
/// Ownership: the library's; do not free it. Valid until this thread's next failed call.
/// Thread-safety: each thread has its own.
#[unsafe(no_mangle)]
pub extern "C" fn qlm_last_denial_reason() -> *const c_char {
    let found = std::panic::catch_unwind(|| read(|r| r.reason.as_ref().map(|m| m.as_ptr()), None));
    found.ok().flatten().unwrap_or_else(empty)
}

/// How many holders the server listed with this thread's last denial (at most 16: the
/// oldest checkouts of the feature); 0 when the last failure was not a denial, or none
/// was listed.
///
/// Thread-safety: each thread has its own.
#[unsafe(no_mangle)]
pub extern "C" fn qlm_last_denial_holder_count() -> usize {
    std::panic::catch_unwind(|| read(|r| r.holders.len(), 0)).unwrap_or(0)
}

/// Holder `index` (0-based) of this thread's last denial, as
/// `"user@host handle=7 count=1 since=<unix ms>"`, followed by `" display=<display>"` when the
/// holder has one. NULL when `index` is out of range.
///
/// Ownership: the library's; do not free it. Valid until this thread's next failed call.
/// Thread-safety: each thread has its own.
#[unsafe(no_mangle)]
pub extern "C" fn qlm_last_denial_holder(index: usize) -> *const c_char {
    let found =
        std::panic::catch_unwind(|| read(|r| r.holders.get(index).map(|h| h.as_ptr()), None));
    found.ok().flatten().unwrap_or(std::ptr::null())
}
