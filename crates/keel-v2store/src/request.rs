//! etcd's v2 request (`etcdserverpb.Request` as the v2 API fills it), its parsing from an
//! HTTP form (`v2http.parseKeyRequest`) and its application to the store (`applierV2`).
//!
//! Parsing is pure: the caller hands over the method, the URL path and the form values in
//! Go's `r.Form` order (body values before query values), plus the proposer's clock for
//! turning `ttl` into an absolute expiration.

use std::sync::Arc;

use crate::error::{ErrorCode, V2Error};
use crate::event::Event;
use crate::node::clean_path;
use crate::store::{Store, TtlOptions};
use crate::time::UnixNanos;

/// Where user keys live in the store (etcd's `StoreKeysPrefix`).
pub const KEYS_PREFIX: &str = "/1";
/// Where cluster membership lives in the store (etcd's `StoreClusterPrefix`).
pub const CLUSTER_PREFIX: &str = "/0";
/// The HTTP path prefix of the keys API.
pub const HTTP_KEYS_PREFIX: &str = "/v2/keys";

/// The v2 methods. GET and HEAD are served locally; the others go through Raft
/// (GET with `quorum=true` becomes QGET).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Read, or watch with `wait=true`.
    Get,
    /// Read without a body.
    Head,
    /// Create in order.
    Post,
    /// Set / create / update / compare-and-swap.
    Put,
    /// Delete / compare-and-delete.
    Delete,
    /// Linearizable read (applied through the log).
    QGet,
    /// Expire keys up to `time` (proposed by the leader).
    Sync,
}

impl Method {
    /// The method for an HTTP verb, if the keys API serves it.
    pub fn from_http(verb: &str) -> Option<Method> {
        Some(match verb {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            _ => return None,
        })
    }
}

/// One v2 request, as proposed (field meanings as etcd's `Request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Request {
    /// What to do.
    pub method: Method,
    /// Full store path (user keys are under [`KEYS_PREFIX`]).
    pub path: String,
    /// The new value.
    pub val: String,
    /// Make a directory.
    pub dir: bool,
    /// Compare against this value (empty: don't).
    pub prev_value: String,
    /// Compare against this modifiedIndex (0: don't).
    pub prev_index: u64,
    /// Require the key to exist (`Some(true)`) or not (`Some(false)`).
    pub prev_exist: Option<bool>,
    /// Watch instead of read.
    pub wait: bool,
    /// The watch's start index (0: next).
    pub since: u64,
    /// Recursive read, watch or delete.
    pub recursive: bool,
    /// Sorted listing.
    pub sorted: bool,
    /// Read through the log.
    pub quorum: bool,
    /// Keep the watch open for more than one event.
    pub stream: bool,
    /// TTL refresh.
    pub refresh: Option<bool>,
    /// Absolute expiry in Unix nanoseconds; 0 for none.
    pub expiration: UnixNanos,
    /// SYNC's time in Unix nanoseconds.
    pub time: UnixNanos,
}

impl V2Request {
    /// A request with every option off.
    pub fn new(method: Method, path: impl Into<String>) -> V2Request {
        V2Request {
            method,
            path: path.into(),
            val: String::new(),
            dir: false,
            prev_value: String::new(),
            prev_index: 0,
            prev_exist: None,
            wait: false,
            since: 0,
            recursive: false,
            sorted: false,
            quorum: false,
            stream: false,
            refresh: None,
            expiration: 0,
            time: 0,
        }
    }

    /// etcd's `TTLOptions()`.
    pub fn ttl_options(&self) -> TtlOptions {
        TtlOptions {
            expire_time: (self.expiration != 0).then_some(self.expiration),
            refresh: self.refresh == Some(true),
        }
    }
}

/// The parsed request plus `noValueOnSuccess`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKeyRequest {
    /// The request to propose or serve.
    pub request: V2Request,
    /// Answer set/create/update/compareAndSwap with the action only.
    pub no_value_on_success: bool,
}

fn first<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn form_error(code: ErrorCode, cause: &str) -> V2Error {
    V2Error::new(code, cause, 0)
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(s, 10, 64)`.
fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn get_bool(form: &[(String, String)], key: &str) -> Result<bool, V2Error> {
    match first(form, key) {
        None => Ok(false),
        Some(v) => parse_bool(v).ok_or_else(|| {
            form_error(
                ErrorCode::InvalidField,
                &format!("invalid value for {key:?}"),
            )
        }),
    }
}

fn get_u64(form: &[(String, String)], key: &str) -> Result<u64, V2Error> {
    match first(form, key) {
        None => Ok(0),
        Some(v) => parse_u64(v)
            .ok_or_else(|| form_error(ErrorCode::IndexNaN, &format!("invalid value for {key:?}"))),
    }
}

fn get_opt_bool(form: &[(String, String)], key: &str) -> Result<Option<bool>, V2Error> {
    match first(form, key) {
        None => Ok(None),
        Some(v) => parse_bool(v).map(Some).ok_or_else(|| {
            form_error(ErrorCode::InvalidField, &format!("invalid value for {key}"))
        }),
    }
}

/// etcd's `parseKeyRequest`: validates the form of a `/v2/keys` request and builds the
/// request. `url_path` is the whole URL path (starting with `/v2/keys`); `now` is the
/// proposer's clock, used only to turn `ttl` into an absolute expiration.
pub fn parse_key_request(
    method: Method,
    url_path: &str,
    form: &[(String, String)],
    now: UnixNanos,
) -> Result<ParsedKeyRequest, V2Error> {
    let Some(rest) = url_path.strip_prefix(HTTP_KEYS_PREFIX) else {
        return Err(form_error(ErrorCode::InvalidForm, "incorrect key prefix"));
    };
    let path = clean_path(&format!("{KEYS_PREFIX}/{rest}"));
    let prev_index = get_u64(form, "prevIndex")?;
    let since = get_u64(form, "waitIndex")?;
    let recursive = get_bool(form, "recursive")?;
    let sorted = get_bool(form, "sorted")?;
    let wait = get_bool(form, "wait")?;
    let dir = get_bool(form, "dir")?;
    let quorum = get_bool(form, "quorum")?;
    let stream = get_bool(form, "stream")?;
    if wait && method != Method::Get {
        return Err(form_error(
            ErrorCode::InvalidField,
            "\"wait\" can only be used with GET requests",
        ));
    }
    let prev_value = first(form, "prevValue").unwrap_or_default().to_string();
    if first(form, "prevValue").is_some() && prev_value.is_empty() {
        return Err(form_error(
            ErrorCode::PrevValueRequired,
            "\"prevValue\" cannot be empty",
        ));
    }
    let no_value_on_success = get_bool(form, "noValueOnSuccess")?;
    let ttl = match first(form, "ttl") {
        Some(v) if !v.is_empty() => Some(
            parse_u64(v)
                .ok_or_else(|| form_error(ErrorCode::TtlNaN, "invalid value for \"ttl\""))?,
        ),
        _ => None,
    };
    let prev_exist = get_opt_bool(form, "prevExist")?;
    let refresh = get_opt_bool(form, "refresh")?;
    let val = first(form, "value").unwrap_or_default().to_string();
    if refresh == Some(true) {
        if !val.is_empty() {
            return Err(form_error(
                ErrorCode::RefreshValue,
                "A value was provided on a refresh",
            ));
        }
        if ttl.is_none() {
            return Err(form_error(
                ErrorCode::RefreshTtlRequired,
                "No TTL value set",
            ));
        }
    }
    // Go computes now + time.Duration(ttl)*time.Second in wrapping int64 arithmetic.
    let expiration = ttl.map_or(0, |t| {
        now.wrapping_add((t as i64).wrapping_mul(1_000_000_000))
    });
    let mut request = V2Request::new(method, path);
    request.val = val;
    request.dir = dir;
    request.prev_value = prev_value;
    request.prev_index = prev_index;
    request.prev_exist = prev_exist;
    request.wait = wait;
    request.since = since;
    request.recursive = recursive;
    request.sorted = sorted;
    request.quorum = quorum;
    request.stream = stream;
    request.refresh = refresh;
    request.expiration = expiration;
    if request.method == Method::Get && quorum {
        request.method = Method::QGet;
    }
    Ok(ParsedKeyRequest {
        request,
        no_value_on_success,
    })
}

impl Store {
    /// etcd's `applierV2`: applies a committed POST, PUT, DELETE, QGET or SYNC. SYNC
    /// answers `Ok(None)`. `now` only affects reported TTLs. GET and HEAD (never proposed:
    /// served with [`Store::get`] / [`Store::watch`]) read like QGET.
    ///
    /// etcd's server intercepts PUTs of `/0/members/<id>/attributes` and `/0/version`
    /// before the store (they update its membership); that belongs to the server.
    pub fn apply(&mut self, r: &V2Request, now: UnixNanos) -> Result<Option<Arc<Event>>, V2Error> {
        let opts = r.ttl_options();
        let has_compare = r.prev_index > 0 || !r.prev_value.is_empty();
        let e = match r.method {
            Method::Post => self.create_in_order(&r.path, r.dir, &r.val, opts, now),
            Method::Put => match r.prev_exist {
                Some(true) if !has_compare => self.update(&r.path, &r.val, opts, now),
                Some(true) => {
                    self.compare_and_swap(&r.path, &r.prev_value, r.prev_index, &r.val, opts, now)
                }
                Some(false) => self.create(&r.path, r.dir, &r.val, opts, now),
                None if has_compare => {
                    self.compare_and_swap(&r.path, &r.prev_value, r.prev_index, &r.val, opts, now)
                }
                None => self.set(&r.path, r.dir, &r.val, opts, now),
            },
            Method::Delete if has_compare => {
                self.compare_and_delete(&r.path, &r.prev_value, r.prev_index, now)
            }
            Method::Delete => self.delete(&r.path, r.dir, r.recursive, now),
            Method::QGet | Method::Get | Method::Head => {
                self.get(&r.path, r.recursive, r.sorted, now)
            }
            Method::Sync => {
                self.delete_expired_keys(r.time);
                return Ok(None);
            }
        };
        e.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Action;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(method: Method, path: &str, pairs: &[(&str, &str)]) -> Result<V2Request, V2Error> {
        parse_key_request(method, path, &form(pairs), 1_000).map(|p| p.request)
    }

    #[test]
    fn parses_like_etcd() {
        let r = parse(
            Method::Put,
            "/v2/keys/a/../b/",
            &[("value", "v"), ("ttl", "5")],
        )
        .expect("valid");
        assert_eq!(r.path, "/1/b");
        assert_eq!(r.val, "v");
        assert_eq!(r.expiration, 5_000_001_000);
        let r = parse(
            Method::Get,
            "/v2/keys/x",
            &[("quorum", "T"), ("recursive", "1")],
        )
        .expect("valid");
        assert_eq!((r.method, r.recursive), (Method::QGet, true));
        let r = parse(Method::Put, "/v2/keys/x", &[("ttl", "")]).expect("empty ttl is no ttl");
        assert_eq!(r.expiration, 0);
        let r = parse(
            Method::Put,
            "/v2/keys/x",
            &[("value", "body"), ("value", "query")],
        )
        .expect("valid");
        assert_eq!(r.val, "body", "the first value wins");
    }

    type BadForm<'a> = (Method, &'a [(&'a str, &'a str)], ErrorCode, &'a str);

    #[test]
    fn rejects_bad_forms_with_etcds_codes() {
        let cases: &[BadForm] = &[
            (
                Method::Put,
                &[("wait", "true")],
                ErrorCode::InvalidField,
                "\"wait\" can only be used with GET requests",
            ),
            (
                Method::Get,
                &[("recursive", "yes")],
                ErrorCode::InvalidField,
                "invalid value for \"recursive\"",
            ),
            (
                Method::Put,
                &[("prevIndex", "-1")],
                ErrorCode::IndexNaN,
                "invalid value for \"prevIndex\"",
            ),
            (
                Method::Get,
                &[("waitIndex", "x")],
                ErrorCode::IndexNaN,
                "invalid value for \"waitIndex\"",
            ),
            (
                Method::Put,
                &[("prevValue", "")],
                ErrorCode::PrevValueRequired,
                "\"prevValue\" cannot be empty",
            ),
            (
                Method::Put,
                &[("ttl", "1.5")],
                ErrorCode::TtlNaN,
                "invalid value for \"ttl\"",
            ),
            (
                Method::Put,
                &[("prevExist", "maybe")],
                ErrorCode::InvalidField,
                "invalid value for prevExist",
            ),
            (
                Method::Put,
                &[("refresh", "true"), ("value", "v"), ("ttl", "1")],
                ErrorCode::RefreshValue,
                "A value was provided on a refresh",
            ),
            (
                Method::Put,
                &[("refresh", "true")],
                ErrorCode::RefreshTtlRequired,
                "No TTL value set",
            ),
        ];
        for (method, pairs, code, cause) in cases {
            let err = parse(*method, "/v2/keys/k", pairs).expect_err("invalid");
            assert_eq!(
                (err.code, err.cause.as_str(), err.index),
                (*code, *cause, 0),
                "{pairs:?}"
            );
        }
        let err = parse(Method::Get, "/v2/other", &[]).expect_err("prefix");
        assert_eq!(err.code, ErrorCode::InvalidForm);
    }

    #[test]
    fn apply_maps_methods_like_etcds_applier() {
        let mut s = Store::new(&["/0", "/1"]);
        let put = |pairs: &[(&str, &str)]| parse(Method::Put, "/v2/keys/k", pairs).expect("valid");
        let action = |s: &mut Store, r: &V2Request| {
            s.apply(r, 0)
                .map(|e| e.expect("an event").action)
                .map_err(|e| e.code)
        };
        assert_eq!(
            action(&mut s, &put(&[("prevExist", "true"), ("value", "a")])),
            Err(ErrorCode::KeyNotFound)
        );
        assert_eq!(
            action(&mut s, &put(&[("prevExist", "false"), ("value", "a")])),
            Ok(Action::Create)
        );
        assert_eq!(action(&mut s, &put(&[("value", "b")])), Ok(Action::Set));
        assert_eq!(
            action(&mut s, &put(&[("prevExist", "true"), ("value", "c")])),
            Ok(Action::Update)
        );
        assert_eq!(
            action(
                &mut s,
                &put(&[("prevExist", "true"), ("prevValue", "c"), ("value", "d")])
            ),
            Ok(Action::CompareAndSwap)
        );
        assert_eq!(
            action(&mut s, &put(&[("prevIndex", "4"), ("value", "e")])),
            Ok(Action::CompareAndSwap)
        );
        let post = parse(Method::Post, "/v2/keys/q", &[("value", "job")]).expect("valid");
        let e = s.apply(&post, 0).expect("post").expect("event");
        assert_eq!(
            (e.action, e.node.key.as_str()),
            (Action::Create, "/1/q/00000000000000000006")
        );
        let cad = parse(Method::Delete, "/v2/keys/k", &[("prevValue", "e")]).expect("valid");
        assert_eq!(action(&mut s, &cad), Ok(Action::CompareAndDelete));
        let del = parse(Method::Delete, "/v2/keys/q", &[("recursive", "true")]).expect("valid");
        assert_eq!(action(&mut s, &del), Ok(Action::Delete));
        let mut sync = V2Request::new(Method::Sync, "");
        sync.time = i64::MAX;
        assert_eq!(s.apply(&sync, 0), Ok(None));
        assert_eq!(s.index(), 8);
    }
}
