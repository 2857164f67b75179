//! `qlm_client_*`: making a client from the environment, a search path or a server list,
//! trusting a vendor key, freeing it.

use std::ffi::{c_char, c_int};

use ::qlm_client::blocking::Client;

use crate::args::{self, QLM_MAX_KEY_TEXT, QLM_MAX_SEARCH_PATH, QLM_MAX_VAR_NAME};
use crate::guard::call;
use crate::registry::Registry;
use crate::status::Failure;

/// A client: where licenses come from (a search path of license files and clusters), and
/// the runtime whose thread heartbeats its sessions. Opaque: only this library reads it.
pub struct qlm_client {
    _opaque: [u8; 0],
}

pub(crate) static CLIENTS: Registry<Client> = Registry::new();

/// The live client `client` names.
pub(crate) fn client(client: *const qlm_client) -> Result<std::sync::Arc<Client>, Failure> {
    CLIENTS.get(client).ok_or_else(|| Failure::bad_handle("client", "qlm_client"))
}

fn publish(made: Client, out: *mut *mut qlm_client) {
    // SAFETY: `out` was checked (not NULL, aligned) before anything was made.
    unsafe { *out = CLIENTS.insert(made).cast() };
}

/// Clears `*out` (when it can be written) so that a failed call leaves no stale handle.
fn clear<T>(out: *mut *mut T) {
    if args::out_pointer(out, "out").is_ok() {
        // SAFETY: checked just above: not NULL, aligned.
        unsafe { *out = std::ptr::null_mut() };
    }
}

/// Makes a client from a search path, as `QLM_LICENSE` spells it: entries separated by `:`
/// (`;` on Windows), each a license file, a directory of `.lic` files, or `port@host`/a
/// server list (`host1:7400,host2:7400`). When `search_path` is NULL the environment is
/// read: `vendor_var` (when not NULL, say `"ACME_LICENSE_FILE"`), then `QLM_LICENSE`, then
/// `QLM_SERVERS`. Nothing is contacted yet.
///
/// `search_path`: NULL or UTF-8 of at most 65536 bytes. `vendor_var`: NULL or UTF-8 of at
/// most 256 bytes. `out`: where the new handle is written (NULL on failure).
///
/// Returns `QLM_OK`; `QLM_ERR_INVALID_ARGUMENT` (an argument refused); `QLM_ERR_NO_SERVERS`
/// (nothing set in the environment, or a path that cannot be read).
///
/// Ownership: the caller owns the new client and frees it with `qlm_client_free`.
/// Thread-safety: any thread; the client may be used from many threads at once.
///
/// # Safety
/// Each pointer is NULL or valid as described above.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qlm_client_new(
    search_path: *const c_char,
    vendor_var: *const c_char,
    out: *mut *mut qlm_client,
) -> c_int {
    call("qlm_client_new", || {
        clear(out);
        args::out_pointer(out, "out")?;
        let path = unsafe { args::optional_text(search_path, "search_path", QLM_MAX_SEARCH_PATH) }?;
        let var = unsafe { args::optional_text(vendor_var, "vendor_var", QLM_MAX_VAR_NAME) }?;
        let made = match path {
            Some(path) => Client::from_search_path(path)?,
            None => Client::from_env(var)?,
        };
        publish(made, out);
        Ok(())
    })
}

/// Makes a client of the cluster at `servers`: `"host1:7400,host2:7400,host3:7400"` (FlexLM's
/// `7400@host1,...` too). Nothing is contacted yet.
///
/// `servers`: UTF-8 of at most 65536 bytes. `out`: where the new handle is written (NULL on
/// failure).
///
/// Returns `QLM_OK`; `QLM_ERR_INVALID_ARGUMENT`; `QLM_ERR_NO_SERVERS` (an empty or
/// unreadable list).
///
/// Ownership: the caller owns the new client and frees it with `qlm_client_free`.
/// Thread-safety: any thread.
///
/// # Safety
/// Each pointer is NULL or valid as described above.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qlm_client_new_servers(
    servers: *const c_char,
    out: *mut *mut qlm_client,
) -> c_int {
    call("qlm_client_new_servers", || {
        clear(out);
        args::out_pointer(out, "out")?;
        let list = unsafe { args::text(servers, "servers", QLM_MAX_SEARCH_PATH) }?;
        publish(Client::from_servers(list)?, out);
        Ok(())
    })
}

/// Trusts a vendor's public key for node-locked license files: `"ed25519-public:..."`, or
/// the text of a key file. Lines signed by no trusted key are refused.
///
/// `client`: a live client. `public_key`: UTF-8 of at most 4096 bytes.
///
/// Returns `QLM_OK`; `QLM_ERR_BAD_HANDLE`; `QLM_ERR_INVALID_ARGUMENT` (NULL, too long, or
/// not a key).
///
/// Thread-safety: any thread.
///
/// # Safety
/// `public_key` is NULL or a valid C string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qlm_client_trust_vendor_key(
    client: *mut qlm_client,
    public_key: *const c_char,
) -> c_int {
    call("qlm_client_trust_vendor_key", || {
        let key = unsafe { args::text(public_key, "public_key", QLM_MAX_KEY_TEXT) }?;
        self::client(client)?.trust_vendor_key(key)?;
        Ok(())
    })
}

/// Frees a client. Its sessions and checkouts stay usable until they are closed or freed.
/// A call still running on the client (from another thread) finishes first.
///
/// Returns `QLM_OK`; `QLM_ERR_BAD_HANDLE` (already freed, or not a client).
///
/// Ownership: `client` is invalid afterwards.
/// Thread-safety: any thread.
///
/// # Safety
/// None beyond C's: any pointer value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qlm_client_free(client: *mut qlm_client) -> c_int {
    call("qlm_client_free", || {
        let taken =
            CLIENTS.take(client).ok_or_else(|| Failure::bad_handle("client", "qlm_client"))?;
        drop(taken);
        Ok(())
    })
}
