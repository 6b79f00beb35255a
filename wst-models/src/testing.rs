//! Helpers for the tests of this crate and of the crates above it (feature `testing`): the
//! random `tiny-gpt2-rm` reward model of the shared test vectors and its Python reference, and
//! HTTP-dates for mock servers.

use std::path::PathBuf;

use serde_json::Value;

/// The `tiny-gpt2-rm` folder of the shared test vectors ([`wst_core::testing::shared_dir`]), with a clear
/// failure when they are absent.
pub fn tiny_gpt2_rm_dir() -> PathBuf {
    let dir = wst_core::testing::shared_dir().join("testvectors/tiny-gpt2-rm");
    assert!(
        dir.join("reference.json").is_file(),
        "test asset missing: {} (the shared test vectors sit beside the repository)",
        dir.display()
    );
    dir
}

/// The `pairs` of `tiny-gpt2-rm/reference.json`, as JSON objects with `query`, `response`,
/// `input_ids` and `score`.
pub fn tiny_gpt2_rm_pairs() -> Vec<Value> {
    let text = std::fs::read_to_string(tiny_gpt2_rm_dir().join("reference.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["pairs"].as_array().unwrap().clone()
}

/// One reference pair of `tiny-gpt2-rm`: what Python's transformers made of it.
#[derive(Debug, Clone, PartialEq)]
pub struct RmPair {
    /// The query (an HH-RLHF dialogue).
    pub query: String,
    /// The response, as it follows `Assistant:`.
    pub response: String,
    /// The token ids of query and response.
    pub input_ids: Vec<i64>,
    /// The score the reference model gave.
    pub score: f64,
}

/// Every reference pair of `tiny-gpt2-rm`, in file order.
pub fn tiny_gpt2_rm_reference() -> Vec<RmPair> {
    tiny_gpt2_rm_pairs()
        .iter()
        .map(|p| RmPair {
            query: p["query"].as_str().unwrap().to_string(),
            response: p["response"].as_str().unwrap().to_string(),
            input_ids: p["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_i64().unwrap())
                .collect(),
            score: p["score"].as_f64().unwrap(),
        })
        .collect()
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) of `secs` since 1970, as a server writes
/// `Retry-After` or `Date`.
pub fn http_date(secs: u64) -> String {
    crate::chat::format_time(secs as i64, "%a, %d %b %Y %H:%M:%S GMT")
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_dates_read_back() {
        assert_eq!(
            super::http_date(784_111_777),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(super::http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            super::http_date(951_825_600),
            "Tue, 29 Feb 2000 12:00:00 GMT"
        );
    }
}
