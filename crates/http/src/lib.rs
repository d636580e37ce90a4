//! Serving an HTTP API (the producer's ingest API, the consumer's admin API) over HTTP/1.1
//! with bounds on slow clients.
//!
//! `axum::serve` gives no hold on hyper's connection settings, and without a timer hyper
//! waits for a request's headers forever: a client that connects and sends nothing, or one
//! byte a minute, holds a connection (and a task) for good. Here each connection is served
//! by hyper's HTTP/1 builder with a timer and `header_read_timeout`, so a connection is closed
//! when a request's headers are not complete within the timeout of connecting or of the
//! previous response (idle keep-alive connections included). Bodies have their own deadline,
//! enforced by the handler (the producer's ingest handler answers 408).
//!
//! On shutdown the listener closes, idle connections close at once, requests in flight finish
//! within [`SHUTDOWN_GRACE`], then the rest are dropped.

use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long requests in flight may take to finish once shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Serve `app` on `listener` until `cancel` fires. `header_read_timeout` bounds how long a
/// connection may take to send a request's headers.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    cancel: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            // Reap finished connections so the set stays as large as the open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of file descriptors, most likely: wait rather than spin.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let cancel = cancel.clone();
        connections.spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                // Header timeouts, resets and parse errors: the client's doing, not ours.
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "requests still running after the shutdown grace; dropping them"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(timeout: Duration) -> (std::net::SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let app = Router::new().route("/", get(|| async { "ok" }));
        tokio::spawn(serve(listener, app, timeout, cancel.clone()));
        (addr, cancel)
    }

    /// Read until the server closes; what it sent.
    async fn until_closed(stream: &mut tokio::net::TcpStream) -> String {
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn idle_and_slow_header_connections_are_closed() {
        let (addr, cancel) = start(Duration::from_millis(300)).await;
        let started = tokio::time::Instant::now();
        let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let bound = Duration::from_secs(5);
        tokio::time::timeout(bound, until_closed(&mut idle))
            .await
            .unwrap();
        tokio::time::timeout(bound, until_closed(&mut slow))
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(300));
        // A keep-alive connection is served, then closed once idle for the timeout.
        let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let answer = tokio::time::timeout(bound, until_closed(&mut kept))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        cancel.cancel();
    }
}
