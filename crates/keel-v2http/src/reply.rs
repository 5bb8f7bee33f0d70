//! Responses shaped like Go's `net/http` and etcd's error writers.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use keel_v2store::V2Error;

/// `X-Etcd-Index`.
pub const X_ETCD_INDEX: &str = "x-etcd-index";
/// `X-Raft-Index`.
pub const X_RAFT_INDEX: &str = "x-raft-index";
/// `X-Raft-Term`.
pub const X_RAFT_TERM: &str = "x-raft-term";
/// `X-Etcd-Cluster-ID`.
pub const X_ETCD_CLUSTER_ID: &str = "x-etcd-cluster-id";

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).expect("etcd's v2 statuses are valid HTTP statuses")
}

fn number(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}

/// etcd's `types.ID.String()`: lower-case hex without padding.
pub fn hex_id(id: u64) -> String {
    format!("{id:x}")
}

/// A response with a status, a content type and a body.
pub fn with_body(code: u16, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status(code);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A JSON body with etcd's content type.
pub fn json(code: u16, body: impl Into<Body>) -> Response {
    with_body(code, JSON, body)
}

/// Go's `http.Error`: plain text with a trailing newline and `nosniff`.
pub fn go_error(code: u16, text: &str) -> Response {
    let mut r = with_body(code, TEXT, format!("{text}\n"));
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Go's `http.NotFound`: what any unknown path answers, and every `/v2/...` path when
/// the v2 API is disabled (`--enable-v2=false`): 404 `404 page not found\n`.
pub fn not_found() -> Response {
    go_error(404, "404 page not found")
}

/// etcd's `allowMethod` refusal: 405 with `Allow` listing the accepted methods.
pub fn method_not_allowed(allow: &'static str) -> Response {
    let mut r = go_error(405, "Method Not Allowed");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// etcd's `httptypes.HTTPError`: `{"message":"..."}` (no trailing newline).
pub fn http_error(code: u16, message: &str) -> Response {
    let body = go_json(&serde_json::json!({ "message": message }));
    json(code, body)
}

/// etcd's `v2error.Error.WriteTo`: `X-Etcd-Index`, the code's status, the JSON plus `\n`.
pub fn v2_error(e: &V2Error) -> Response {
    let mut r = json(e.status_code(), format!("{}\n", e.to_json()));
    r.headers_mut().insert(X_ETCD_INDEX, number(e.index));
    r
}

/// Adds the Raft position headers etcd writes with every key answer.
pub fn set_index_headers(r: &mut Response, etcd_index: u64, raft: crate::RaftStatus) {
    let h = r.headers_mut();
    h.insert(X_ETCD_INDEX, number(etcd_index));
    h.insert(X_RAFT_INDEX, number(raft.index));
    h.insert(X_RAFT_TERM, number(raft.term));
}

/// Adds `X-Etcd-Cluster-ID`.
pub fn set_cluster_id(r: &mut Response, cluster_id: u64) {
    r.headers_mut().insert(
        X_ETCD_CLUSTER_ID,
        HeaderValue::from_str(&hex_id(cluster_id)).expect("hex digits are a valid header value"),
    );
}

/// serde_json output with Go's `encoding/json` HTML-safe escaping (`<`, `>`, `&`,
/// U+2028, U+2029 as `\uXXXX`). These characters can only occur inside JSON strings, so
/// replacing them anywhere in the text is exact.
pub fn go_json<T: serde::Serialize>(v: &T) -> String {
    let s = serde_json::to_string(v).expect("serialising plain structs cannot fail");
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_json_escapes_html_like_encoding_json() {
        assert_eq!(
            go_json(&serde_json::json!({ "m": "a<b>&\u{2028}" })),
            r#"{"m":"a\u003cb\u003e\u0026\u2028"}"#
        );
    }

    #[test]
    fn ids_are_unpadded_lower_hex() {
        assert_eq!(hex_id(0x8e9e05c52164694d), "8e9e05c52164694d");
        assert_eq!(hex_id(0xa), "a");
    }
}
