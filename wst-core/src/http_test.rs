//! One HTTP/1.1 request read off a socket, for the small test servers of other crates (feature
//! `testing`): [`parse_request`] cuts a request out of the bytes received so far (blocking and
//! async servers alike feed it), [`read_request`] reads one from a blocking stream.

use std::io::Read;

/// A request as a test server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The request line (`POST /v1/chat/completions HTTP/1.1`).
    pub first: String,
    /// The request line and the headers, up to and with the blank line.
    pub head: String,
    /// The body: `Content-Length` bytes (none without the header), read lossily as UTF-8.
    pub body: String,
}

impl Request {
    /// The value of header `name` (any case), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// The request at the start of `buf`, once its head and all of its body have arrived.
pub fn parse_request(buf: &[u8]) -> Option<Request> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut req = Request {
        first: head.lines().next().unwrap_or("").to_string(),
        head,
        body: String::new(),
    };
    let len: usize = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body = buf.get(head_end..head_end + len)?;
    req.body = String::from_utf8_lossy(body).to_string();
    Some(req)
}

/// Reads one request from `sock`; `None` when the stream fails or ends before it is whole.
pub fn read_request(sock: &mut impl Read) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(req) = parse_request(&buf) {
            return Some(req);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_whole_once_its_body_has_arrived() {
        let raw = b"POST /v1/chat HTTP/1.1\r\nHost: x\r\ncontent-LENGTH: 7\r\n\r\n{\"a\":1}";
        for cut in 0..raw.len() {
            assert_eq!(parse_request(&raw[..cut]), None, "{cut}");
        }
        let req = parse_request(raw).unwrap();
        assert_eq!(req.first, "POST /v1/chat HTTP/1.1");
        assert_eq!(req.header("host"), Some("x"));
        assert_eq!(req.body, "{\"a\":1}");
        assert_eq!(read_request(&mut &raw[..]), Some(req));
        assert_eq!(read_request(&mut &raw[..20]), None);
        let get = parse_request(b"GET /v1/models HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(
            (get.first.as_str(), get.body.as_str()),
            ("GET /v1/models HTTP/1.1", "")
        );
    }
}
