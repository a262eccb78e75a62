//! The HTTP API's server: hyper's HTTP/1.1 on a current-thread tokio runtime in the
//! calling thread, in front of control's pure request handling (`control::http::handle`).
//! Bounded request heads, a deadline for the head and one for the whole connection (so
//! also for writing the reply), a bounded number of connections served concurrently, one
//! request per connection. The sockets live here so that the control plane stays sans-IO.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use control::http::{handle, Api, Response};
use http_body_util::{Either, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::capture_body::CaptureBody;

/// A whole reply, or a live capture's stream.
type ReplyBody = Either<Full<Bytes>, CaptureBody>;

fn to_hyper(r: Response) -> hyper::Response<ReplyBody> {
    let mut b = hyper::Response::builder()
        .status(r.status)
        .header(hyper::header::CONTENT_TYPE, r.content_type)
        .header(hyper::header::CACHE_CONTROL, "no-store");
    if r.status == 401 {
        b = b.header(hyper::header::WWW_AUTHENTICATE, "Bearer");
    }
    let body = match r.stream {
        Some(s) => Either::Right(CaptureBody::new(s)),
        None => Either::Left(Full::new(Bytes::from(r.body))),
    };
    b.body(body).unwrap_or_else(|_| {
        let mut x = hyper::Response::new(Either::Left(Full::new(Bytes::new())));
        *x.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        x
    })
}

/// `extra_us`: how much longer than the connection deadline this connection may live
/// (a capture stream's own duration limit).
fn answer(api: &Api, req: &hyper::Request<Incoming>, extra_us: &AtomicU64) -> hyper::Response<ReplyBody> {
    // the body is never read (no route takes one); hyper closes the connection after the reply
    let target = req.uri().to_string();
    let headers: Vec<(&str, &[u8])> = req.headers().iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
    let r = handle(api, req.method().as_str(), &target, &headers);
    if let Some(s) = &r.stream {
        extra_us.store(s.limits().max_duration_us, Ordering::Relaxed);
    }
    to_hyper(r)
}

/// One connection slot, given back when the connection ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Run `conn` until the connection deadline, which a capture stream moves out by its
/// own duration limit (`extra_us`, set when the reply is a stream): a stalled reader
/// cannot hold a connection and a capture for ever.
async fn within_deadline<F: Future>(base: Duration, extra_us: &AtomicU64, conn: F) -> Result<F::Output, ()> {
    let start = tokio::time::Instant::now();
    tokio::pin!(conn);
    let mut until = start + base;
    loop {
        match tokio::time::timeout_at(until, &mut conn).await {
            Ok(r) => return Ok(r),
            Err(_) => {
                let later = start + base + Duration::from_micros(extra_us.load(Ordering::Relaxed));
                if later <= until {
                    return Err(());
                }
                until = later;
            }
        }
    }
}

/// Serve the API on `listener` until the process ends (runs a current-thread tokio
/// runtime in the calling thread). Errors only if the runtime cannot start.
pub fn serve(listener: std::net::TcpListener, api: Arc<Api>) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let active = Arc::new(AtomicUsize::new(0));
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(api.opts.header_timeout)
            .max_header_size(api.opts.max_header_bytes)
            .max_buf_size(api.opts.max_header_bytes.max(8192))
            .max_headers(64)
            .keep_alive(false);
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    // out of descriptors and the like: do not spin
                    log::warn!("http: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if active.load(Ordering::Relaxed) >= api.opts.max_connections {
                api.stats.refused_busy.fetch_add(1, Ordering::Relaxed);
                let _ = stream.try_write(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n",
                );
                continue;
            }
            active.fetch_add(1, Ordering::Relaxed);
            let slot = Slot(active.clone());
            let api = api.clone();
            let extra_us = Arc::new(AtomicU64::new(0));
            let conn = builder.serve_connection(
                TokioIo::new(stream),
                service_fn({
                    let (api, extra_us) = (api.clone(), extra_us.clone());
                    move |req| {
                        let r = answer(&api, &req, &extra_us);
                        async move { Ok::<_, Infallible>(r) }
                    }
                }),
            );
            tokio::spawn(async move {
                let _slot = slot;
                match within_deadline(api.opts.connection_timeout, &extra_us, conn).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        if e.is_timeout() {
                            api.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                        }
                        log::debug!("http: {e}");
                    }
                    Err(_) => {
                        api.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                        log::debug!("http: connection closed at its deadline");
                    }
                }
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_moves_the_connection_deadline_out_by_its_duration() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let base = Duration::from_millis(50);
            let slow = || tokio::time::sleep(Duration::from_millis(150));
            // a whole reply: the connection deadline
            assert!(within_deadline(base, &AtomicU64::new(0), slow()).await.is_err());
            // a stream of up to 200 ms: 50 + 200 ms
            let extra = AtomicU64::new(200_000);
            assert!(within_deadline(base, &extra, slow()).await.is_ok());
            // ... but not longer
            let t = tokio::time::Instant::now();
            let never = std::future::pending::<()>();
            assert!(within_deadline(base, &extra, never).await.is_err());
            assert!(t.elapsed() >= Duration::from_millis(250) && t.elapsed() < Duration::from_secs(2));
        });
    }
}
