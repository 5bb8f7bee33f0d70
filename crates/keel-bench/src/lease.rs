//! `lease-keepalive`: `--total` keep-alive round trips over the clients.
//!
//! As etcd's tool does, each client grants itself one lease (TTL
//! [`LEASE_TTL_SECS`]) before the clock starts, then every operation it
//! claims is one keep-alive of that lease done the way clientv3's
//! `KeepAliveOnce` does it: open a `LeaseKeepAlive` stream, send one request,
//! wait for its response. A lease that could not be granted up front is
//! granted again by the next operation (which then counts the grant's error
//! if it fails again), so a server that comes up late shows as errors, not
//! as a panic. The leases are left to expire, as etcd's tool leaves them.

use keel_proto::etcdserverpb::lease_client::LeaseClient;
use keel_proto::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest};
use tonic::Status;
use tonic::transport::Channel;

use crate::runner::Operations;

/// TTL of each client's lease, etcd's tool's.
pub const LEASE_TTL_SECS: i64 = 100;

/// etcd's message when a keep-alive finds no lease (clientv3's
/// `ErrLeaseNotFound`, which it returns for a response with TTL <= 0).
pub const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";

/// One client keeping its lease alive.
#[derive(Debug)]
pub struct KeepAliveOperations {
    client: LeaseClient<Channel>,
    lease_id: Option<i64>,
}

impl KeepAliveOperations {
    /// A client on `channel`, with no lease yet.
    pub fn new(channel: Channel) -> KeepAliveOperations {
        KeepAliveOperations {
            client: LeaseClient::new(channel),
            lease_id: None,
        }
    }

    async fn lease(&mut self) -> Result<i64, Status> {
        if let Some(id) = self.lease_id {
            return Ok(id);
        }
        let granted = self
            .client
            .lease_grant(LeaseGrantRequest {
                ttl: LEASE_TTL_SECS,
                id: 0,
            })
            .await?
            .into_inner();
        if !granted.error.is_empty() {
            return Err(Status::unknown(granted.error));
        }
        self.lease_id = Some(granted.id);
        Ok(granted.id)
    }

    async fn keep_alive_once(&mut self) -> Result<(), Status> {
        let id = self.lease().await?;
        let mut responses = self
            .client
            .lease_keep_alive(tokio_stream::iter([LeaseKeepAliveRequest { id }]))
            .await?
            .into_inner();
        match responses.message().await? {
            Some(response) if response.ttl > 0 => Ok(()),
            Some(_) => Err(Status::not_found(LEASE_NOT_FOUND)),
            None => Err(Status::unavailable(
                "the keep-alive stream ended without a response",
            )),
        }
    }
}

impl Operations for KeepAliveOperations {
    async fn prepare(&mut self) {
        // A failure here is retried by the first operation, which counts it.
        let _ = self.lease().await;
    }

    async fn call(&mut self, _index: u64) -> (usize, Result<(), Status>) {
        (0, self.keep_alive_once().await)
    }
}
