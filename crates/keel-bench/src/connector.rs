//! keel-bench's client connections: TCP with `TCP_NODELAY`, writes coalesced.
//!
//! tonic's own connector writes each HTTP/2 frame on its own: three socket writes per
//! unary request. etcd's `benchmark` tool (grpc-go) writes whatever it has queued at
//! once. [`Connector`] wraps each connection in [`Coalesced`], which does the same, so
//! the client spends its CPU on requests rather than on loopback writes. It serves
//! `Endpoint::connect_with_connector_lazy`; the endpoint's connect timeout still applies.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use keel_proto::coalesce::Coalesced;
use tokio::net::TcpStream;
use tonic::codegen::http::Uri;

/// A connection to an endpoint.
pub type Connection = TokioIo<Coalesced<TcpStream>>;

/// Makes [`Connection`]s to the host and port of the URI it is called with.
#[derive(Clone, Copy, Debug, Default)]
pub struct Connector;

impl tower::Service<Uri> for Connector {
    type Response = Connection;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Connection>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(async move {
            let host = uri.host().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("no host in {uri}"))
            })?;
            // An IPv6 literal comes bracketed in the URI.
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().unwrap_or(80);
            let stream = TcpStream::connect((host, port)).await?;
            stream.set_nodelay(true)?;
            Ok(TokioIo::new(Coalesced::new(stream)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower::Service;

    #[tokio::test]
    async fn connects_to_the_uris_host_and_port_with_nodelay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let uri: Uri = format!("http://{addr}").parse().expect("uri");
        let (connected, accepted) =
            tokio::join!(Connector.call(uri), async { listener.accept().await });
        let connection = connected.expect("connect");
        let (mut server_side, _) = accepted.expect("accept");
        let mut stream = connection.into_inner();
        assert!(stream.get_ref().nodelay().expect("nodelay"));
        stream.write_all(b"ping").await.expect("write");
        stream.flush().await.expect("flush");
        let mut got = [0u8; 4];
        server_side.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"ping");
    }

    #[tokio::test]
    async fn a_refused_port_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let uri: Uri = format!("http://{addr}").parse().expect("uri");
        assert!(Connector.call(uri).await.is_err());
    }
}
