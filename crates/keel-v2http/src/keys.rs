//! `/v2/keys`: etcd's `keysHandler`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::Response;
use futures_util::stream;
use keel_v2store::request::KEYS_PREFIX;
use keel_v2store::{
    Action, ErrorCode, Event, Method, V2Error, Watcher, WatcherId, parse_key_request,
};

use crate::reply;
use crate::{BackendError, V2Backend};

/// The largest form body read (Go's `ParseForm` limit for url-encoded bodies).
pub const MAX_FORM_BODY_BYTES: usize = 10 << 20;

const KEYS_ALLOW: &str = "HEAD,GET,PUT,POST,DELETE";

type Backend = Arc<dyn V2Backend>;

pub(crate) async fn handle(State(backend): State<Backend>, req: Request) -> Response {
    // etcd refuses other methods before it sets the cluster id header.
    let Some(method) = Method::from_http(req.method().as_str()) else {
        return reply::method_not_allowed(KEYS_ALLOW);
    };
    let cluster_id = backend.cluster().cluster_id;
    let mut r = serve(&backend, method, req).await;
    reply::set_cluster_id(&mut r, cluster_id);
    r
}

async fn serve(backend: &Backend, method: Method, req: Request) -> Response {
    let (form, url_path) = match read_form(method, req).await {
        Ok(v) => v,
        Err(e) => return reply::v2_error(&e),
    };
    let parsed = match parse_key_request(method, &url_path, &form, backend.now()) {
        Ok(p) => p,
        Err(e) => return reply::v2_error(&e),
    };
    let request = parsed.request;
    let answer = match request.method {
        Method::Get if request.wait => {
            return match backend.watch(&request) {
                Ok(w) => watch_response(backend, w, request.stream),
                Err(e) => error_response(e),
            };
        }
        Method::Get | Method::Head => backend.get(&request),
        Method::Put | Method::Post | Method::Delete | Method::QGet => {
            backend.propose(request).await
        }
        Method::Sync => unreachable!("parse_key_request never builds a SYNC"),
    };
    match answer {
        Ok(event) => event_response(backend, &event, parsed.no_value_on_success),
        Err(e) => error_response(e),
    }
}

/// Go's `r.Form`: url-encoded body values (POST and PUT with that content type only)
/// before query values; and the percent-decoded URL path.
async fn read_form(
    method: Method,
    req: Request,
) -> Result<(Vec<(String, String)>, String), V2Error> {
    let (parts, body) = req.into_parts();
    let path = percent_encoding::percent_decode_str(parts.uri.path())
        .decode_utf8()
        .map_err(|_| form_error("invalid URL path encoding"))?
        .into_owned();
    let mut form = Vec::new();
    let url_encoded = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if matches!(method, Method::Put | Method::Post) && url_encoded {
        let bytes: Bytes = axum::body::to_bytes(body, MAX_FORM_BODY_BYTES)
            .await
            .map_err(|_| form_error("http: POST too large"))?;
        form.extend(form_urlencoded::parse(&bytes).into_owned());
    }
    if let Some(q) = parts.uri.query() {
        form.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    Ok((form, path))
}

fn form_error(cause: &str) -> V2Error {
    V2Error::new(ErrorCode::InvalidForm, cause, 0)
}

/// etcd's `writeKeyError` after `trimErrorPrefix`: store errors as they are (cause
/// without `/1`), anything else as error 300 with the server's message and index 0.
fn error_response(e: BackendError) -> Response {
    let mut e = match e {
        BackendError::Store(e) => e,
        BackendError::Unavailable(msg) => V2Error::new(ErrorCode::RaftInternal, msg, 0),
    };
    e.trim_cause_prefix(KEYS_PREFIX);
    reply::v2_error(&e)
}

fn client_event(e: &Event) -> Event {
    let mut e = e.clone();
    e.trim_prefix(KEYS_PREFIX);
    e
}

/// etcd's `writeKeyEvent`: 201 for created keys, the Raft headers, the event plus `\n`.
fn event_response(backend: &Backend, event: &Event, no_value_on_success: bool) -> Response {
    let e = client_event(event);
    let hide_nodes = no_value_on_success
        && matches!(
            e.action,
            Action::Set | Action::CompareAndSwap | Action::Create | Action::Update
        );
    let body = if hide_nodes {
        e.to_json_without_nodes()
    } else {
        e.to_json()
    };
    let code = if e.is_created() { 201 } else { 200 };
    let mut r = reply::json(code, format!("{body}\n"));
    reply::set_index_headers(&mut r, e.etcd_index, backend.raft_status());
    r
}

/// Removes the watcher when the response body is dropped: after its last event, or
/// when hyper drops the body because the client closed the connection.
struct WatchGuard {
    backend: Backend,
    id: WatcherId,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.backend.cancel_watch(self.id);
    }
}

struct WatchState {
    watcher: Watcher,
    stream: bool,
    done: bool,
    _guard: WatchGuard,
}

/// etcd's `handleKeyWatch`: headers (with the watcher's start index) go out at once;
/// then one event (long poll) or one JSON line per event (`stream=true`) in chunks.
/// etcd waits with `defaultWatchTimeout = math.MaxInt64`, i.e. until the client goes
/// away or the store ends the watch; Keel does the same (no server-side timeout).
fn watch_response(backend: &Backend, watcher: Watcher, stream_events: bool) -> Response {
    let start_index = watcher.start_index;
    let state = WatchState {
        _guard: WatchGuard {
            backend: Arc::clone(backend),
            id: watcher.id,
        },
        watcher,
        stream: stream_events,
        done: false,
    };
    let events = stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        let event = s.watcher.events.recv().await?;
        s.done = !s.stream;
        let line = format!("{}\n", client_event(&event).to_json());
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(line)), s))
    });
    let mut r = reply::json(200, Body::from_stream(events));
    reply::set_index_headers(&mut r, start_index, backend.raft_status());
    r
}
