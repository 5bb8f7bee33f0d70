//! Shared by the integration tests and the benchmark: a test double for the server and a
//! minimal HTTP/1.1 client over raw TCP (so tests see the exact bytes on the wire).
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod replay;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_v2http::{BackendError, BoxFuture, ClusterView, Member, RaftStatus, V2Backend};
use keel_v2store::{Event, Method, Stats, Store, V2Request, Watcher, WatcherId};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Test double for the server's Raft-backed backend: applies every request directly to
/// a `keel_v2store::Store` behind a std mutex (never held across an await). Each applied
/// write counts as one Raft entry at term 2, like a fresh single-member etcd whose first
/// entries are its own membership and election.
pub struct StoreBackendDouble {
    pub store: Mutex<Store>,
    raft_index: AtomicU64,
    pub cluster: ClusterView,
    pub leader: bool,
}

/// Raft entries a fresh single member has committed before the first client request.
pub const RAFT_START_INDEX: u64 = 5;
/// The double's identity (etcd's are random; the fixtures hold placeholders for them).
pub const CLUSTER_ID: u64 = 0xcdf818194e3a8c32;
pub const MEMBER_ID: u64 = 0x8e9e05c52164694d;
pub const MEMBER_NAME: &str = "fixture";
pub const PEER_URL: &str = "http://127.0.0.1:2380";
pub const RAFT_TERM: u64 = 2;

impl StoreBackendDouble {
    pub fn new(client_url: &str) -> Arc<StoreBackendDouble> {
        let mut store = Store::new(&["/0", "/1"]);
        // etcd's first applied entries write the member and the cluster version into the
        // v2 store (/0/members/<id>/..., /0/version): index 3 before any user request.
        for path in [
            "/0/members/x/raftAttributes",
            "/0/members/x/attributes",
            "/0/version",
        ] {
            let mut r = V2Request::new(Method::Put, path);
            r.val = "{}".into();
            store.apply(&r, 0).expect("namespace writes succeed");
        }
        Arc::new(StoreBackendDouble {
            store: Mutex::new(store),
            raft_index: AtomicU64::new(RAFT_START_INDEX),
            cluster: ClusterView {
                cluster_id: CLUSTER_ID,
                members: vec![Member {
                    id: MEMBER_ID,
                    name: MEMBER_NAME.into(),
                    peer_urls: vec![PEER_URL.into()],
                    client_urls: vec![client_url.to_string()],
                }],
                leader: Some(MEMBER_ID),
            },
            leader: true,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().expect("store lock not poisoned")
    }

    pub fn watchers(&self) -> usize {
        self.lock().watcher_count()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i64
}

impl V2Backend for StoreBackendDouble {
    fn propose(&self, req: V2Request) -> BoxFuture<'_, Result<Arc<Event>, BackendError>> {
        Box::pin(async move {
            self.raft_index.fetch_add(1, Ordering::SeqCst);
            let e = self.lock().apply(&req, now())?;
            Ok(e.expect("only SYNC answers without an event"))
        })
    }

    fn get(&self, req: &V2Request) -> Result<Arc<Event>, BackendError> {
        Ok(self
            .lock()
            .get(&req.path, req.recursive, req.sorted, now())?)
    }

    fn watch(&self, req: &V2Request) -> Result<Watcher, BackendError> {
        Ok(self
            .lock()
            .watch(&req.path, req.recursive, req.stream, req.since)?)
    }

    fn cancel_watch(&self, id: WatcherId) {
        self.lock().remove_watcher(id);
    }

    fn raft_status(&self) -> RaftStatus {
        RaftStatus {
            index: self.raft_index.load(Ordering::SeqCst),
            term: RAFT_TERM,
        }
    }

    fn cluster(&self) -> ClusterView {
        self.cluster.clone()
    }

    fn store_stats(&self) -> Stats {
        self.lock().stats()
    }

    fn self_stats(&self) -> String {
        r#"{"name":"default","id":"8e9e05c52164694d","state":"StateLeader"}"#.to_string()
    }

    fn leader_stats(&self) -> Option<String> {
        self.leader
            .then(|| r#"{"leader":"8e9e05c52164694d","followers":{}}"#.to_string())
    }

    fn now(&self) -> i64 {
        now()
    }
}

/// Binds 127.0.0.1:0; returns the listener and its base URL.
pub async fn listen() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    (listener, format!("http://{addr}"))
}

/// Serves `router` on `listener` in the background.
pub fn serve(listener: tokio::net::TcpListener, router: axum::Router) {
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
}

/// A double whose member advertises the listener's URL, served with the v2 router plus
/// `extra` routes; returns the double and the base URL.
pub async fn start_with(extra: axum::Router) -> (Arc<StoreBackendDouble>, String) {
    let (listener, base) = listen().await;
    let backend = StoreBackendDouble::new(&base);
    let router = keel_v2http::router(backend.clone()).merge(extra);
    serve(listener, router);
    (backend, base)
}

/// [`start_with`] without extra routes.
pub async fn start() -> (Arc<StoreBackendDouble>, String) {
    start_with(axum::Router::new()).await
}

/// One HTTP answer as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// Lower-cased names, in wire order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends one request (with `Connection: close`) and reads the whole answer.
pub async fn request(base: &str, method: &str, path: &str, form: &str) -> Answer {
    let conn = Conn::open(base, method, path, form, &[]).await;
    tokio::time::timeout(TIMEOUT, conn.read_all())
        .await
        .expect("answer within the test timeout")
}

/// An open request whose body can be read piece by piece (watches).
pub struct Conn {
    pub reader: BufReader<TcpStream>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    head: bool,
}

impl Conn {
    pub async fn open(
        base: &str,
        method: &str,
        path: &str,
        form: &str,
        extra_headers: &[(&str, &str)],
    ) -> Conn {
        let mut headers = extra_headers.to_vec();
        if !form.is_empty() {
            headers.push(("Content-Type", "application/x-www-form-urlencoded"));
        }
        Conn::open_body(base, method, path, form, &headers).await
    }

    /// Sends `body` (with a Content-Length) and the given headers.
    pub async fn open_body(
        base: &str,
        method: &str,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Conn {
        let addr = base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        req.push_str(body);
        stream.write_all(req.as_bytes()).await.expect("send");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        tokio::time::timeout(TIMEOUT, reader.read_line(&mut line))
            .await
            .expect("status line in time")
            .expect("read status");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status code");
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).await.expect("read header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').expect("header line");
            headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
        }
        Conn {
            reader,
            status,
            headers,
            head: method == "HEAD",
        }
    }

    fn chunked(&self) -> bool {
        self.headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v == "chunked")
    }

    /// The next chunk of a chunked body; `None` at its end.
    pub async fn next_chunk(&mut self) -> Option<String> {
        let mut line = String::new();
        self.reader.read_line(&mut line).await.expect("chunk size");
        let size = usize::from_str_radix(line.trim(), 16).expect("hex chunk size");
        let mut buf = vec![0; size + 2];
        self.reader.read_exact(&mut buf).await.expect("chunk");
        if size == 0 {
            return None;
        }
        buf.truncate(size);
        Some(String::from_utf8(buf).expect("utf-8 body"))
    }

    pub async fn read_all(mut self) -> Answer {
        let mut body = String::new();
        if self.head {
            // A HEAD answer has headers only, whatever Content-Length says.
        } else if self.chunked() {
            while let Some(c) = self.next_chunk().await {
                body.push_str(&c);
            }
        } else {
            self.reader
                .read_to_string(&mut body)
                .await
                .expect("read body");
        }
        Answer {
            status: self.status,
            headers: self.headers,
            body,
        }
    }
}
