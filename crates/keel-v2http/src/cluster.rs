//! `/v2/members`, `/v2/machines` and `/v2/stats/*`: etcd's `membersHandler`,
//! `machinesHandler` and `statsHandler`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::reply::{self, go_json, hex_id};
use crate::{ClusterView, Member, V2Backend};

type Backend = Arc<dyn V2Backend>;

/// The largest member request body read.
pub const MAX_MEMBER_BODY_BYTES: usize = 64 << 10;

const MEMBERS_PREFIX: &str = "/v2/members";

#[derive(Serialize)]
struct MemberJson<'a> {
    id: String,
    name: &'a str,
    #[serde(rename = "peerURLs")]
    peer_urls: &'a [String],
    #[serde(rename = "clientURLs")]
    client_urls: &'a [String],
}

impl<'a> MemberJson<'a> {
    fn new(m: &'a Member) -> MemberJson<'a> {
        MemberJson {
            id: hex_id(m.id),
            name: &m.name,
            peer_urls: &m.peer_urls,
            client_urls: &m.client_urls,
        }
    }
}

#[derive(Serialize)]
struct MembersJson<'a> {
    members: Vec<MemberJson<'a>>,
}

/// The body of member POST and PUT (`httptypes.MemberCreateRequest` /
/// `MemberUpdateRequest`).
#[derive(Deserialize)]
struct MemberRequest {
    #[serde(rename = "peerURLs")]
    _peer_urls: Vec<String>,
}

/// etcd's `membersHandler`.
///
/// Membership changes (POST add, DELETE remove, PUT update of a known member) are not
/// implemented by Keel's server yet. After the same validation as etcd (method, member
/// id, JSON content type and body), they are answered with what etcd answers when the
/// server rejects a membership change for a reason the handler does not map: 500
/// `{"message":"Internal Server Error"}`. Unknown ids still get etcd's 404
/// `{"message":"No such member: <id>"}`.
pub(crate) async fn members(State(backend): State<Backend>, req: Request) -> Response {
    let method = req.method().as_str().to_string();
    if !matches!(method.as_str(), "GET" | "POST" | "DELETE" | "PUT") {
        return reply::method_not_allowed("GET,POST,DELETE,PUT");
    }
    let cluster = backend.cluster();
    let mut r = member_answer(&method, &cluster, req).await;
    reply::set_cluster_id(&mut r, cluster.cluster_id);
    r
}

async fn member_answer(method: &str, cluster: &ClusterView, req: Request) -> Response {
    let rest = req
        .uri()
        .path()
        .strip_prefix(MEMBERS_PREFIX)
        .unwrap_or_default();
    let rest = rest.strip_prefix('/').unwrap_or(rest).to_string();
    match method {
        "GET" => match rest.as_str() {
            "" => {
                let body = MembersJson {
                    members: cluster.members.iter().map(MemberJson::new).collect(),
                };
                reply::json(200, format!("{}\n", go_json(&body)))
            }
            "leader" => match cluster
                .leader
                .and_then(|id| cluster.members.iter().find(|m| m.id == id))
            {
                Some(m) => reply::json(200, format!("{}\n", go_json(&MemberJson::new(m)))),
                None => reply::http_error(503, "During election"),
            },
            _ => reply::http_error(404, "Not found"),
        },
        "POST" => match read_member_request(req).await {
            Err(r) => r,
            Ok(()) => membership_change_refused("add"),
        },
        _ => {
            if rest.is_empty() {
                return reply::go_error(405, "Method Not Allowed");
            }
            let Ok(id) = u64::from_str_radix(&rest, 16) else {
                return reply::http_error(404, &format!("No such member: {rest}"));
            };
            let known = cluster.members.iter().any(|m| m.id == id);
            if method == "PUT"
                && let Err(r) = read_member_request(req).await
            {
                return r;
            }
            if known {
                membership_change_refused(if method == "PUT" { "update" } else { "remove" })
            } else {
                reply::http_error(404, &format!("No such member: {}", hex_id(id)))
            }
        }
    }
}

fn membership_change_refused(what: &str) -> Response {
    tracing::warn!(
        change = what,
        "v2 member change refused: membership changes are not supported yet"
    );
    reply::http_error(500, "Internal Server Error")
}

/// etcd's `unmarshalRequest`: JSON content type (415 otherwise), a body that decodes
/// (400 with the decoder's message otherwise).
async fn read_member_request(req: Request) -> Result<(), Response> {
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let ctype = match ctype.find(';') {
        Some(i) => ctype[..i].trim().to_ascii_lowercase(),
        None => ctype,
    };
    if ctype != "application/json" {
        return Err(reply::http_error(
            415,
            &format!("Bad Content-Type {ctype}, accept application/json"),
        ));
    }
    let body = axum::body::to_bytes(req.into_body(), MAX_MEMBER_BODY_BYTES)
        .await
        .map_err(|e| reply::http_error(400, &e.to_string()))?;
    serde_json::from_slice::<MemberRequest>(&body)
        .map(|_| ())
        .map_err(|e| reply::http_error(400, &e.to_string()))
}

/// etcd's `machinesHandler`: the client URLs of every member, joined by `", "`.
pub(crate) async fn machines(State(backend): State<Backend>, req: Request) -> Response {
    if !matches!(req.method().as_str(), "GET" | "HEAD") {
        return reply::method_not_allowed("GET,HEAD");
    }
    let urls: Vec<String> = backend
        .cluster()
        .members
        .into_iter()
        .flat_map(|m| m.client_urls)
        .collect();
    reply::with_body(200, "text/plain; charset=utf-8", urls.join(", "))
}

/// `/v2/stats/store`.
pub(crate) async fn store_stats(State(backend): State<Backend>, req: Request) -> Response {
    if req.method().as_str() != "GET" {
        return reply::method_not_allowed("GET");
    }
    reply::json(200, backend.store_stats().to_json())
}

/// `/v2/stats/self`.
pub(crate) async fn self_stats(State(backend): State<Backend>, req: Request) -> Response {
    if req.method().as_str() != "GET" {
        return reply::method_not_allowed("GET");
    }
    reply::json(200, backend.self_stats())
}

/// `/v2/stats/leader`: 403 `{"message":"not current leader"}` on a follower.
pub(crate) async fn leader_stats(State(backend): State<Backend>, req: Request) -> Response {
    if req.method().as_str() != "GET" {
        return reply::method_not_allowed("GET");
    }
    match backend.leader_stats() {
        Some(s) => reply::json(200, s),
        None => reply::http_error(403, "not current leader"),
    }
}
