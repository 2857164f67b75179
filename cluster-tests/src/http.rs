//! A minimal HTTP/1.1 client for the nodes' HTTP port (dashboard, metrics, probes).

use std::time::Duration;

/// How long a test waits for an HTTP answer.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A plain HTTP/1.1 `GET` over a `TcpStream` (`Connection: close`, so the body runs to the end
/// of the stream): the status code and the body. Enough for the node's own small answers.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT)).map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| format!("send to {addr}: {e}"))?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| format!("read from {addr}: {e}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").ok_or("no end of headers")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status code in `{head}`"))?;
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Ok((code, dechunk(body)?));
    }
    Ok((code, body.to_owned()))
}

/// The body of a chunked HTTP answer.
fn dechunk(mut rest: &str) -> Result<String, String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").ok_or("truncated chunk size")?;
        let size =
            usize::from_str_radix(size.trim(), 16).map_err(|e| format!("chunk size: {e}"))?;
        if size == 0 {
            return Ok(body);
        }
        let chunk = after.get(..size).ok_or("truncated chunk")?;
        body.push_str(chunk);
        rest = after.get(size + 2..).ok_or("truncated chunk end")?;
    }
}
