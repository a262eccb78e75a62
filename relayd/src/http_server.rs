//! The HTTP API's server: hyper's HTTP/1.1 on a current-thread tokio runtime in the
//! calling thread, in front of control's pure request handling (`control::http::handle`).
//! Bounded request heads, a deadline for the head and one for the whole connection (so
//! also for writing the reply), a bounded number of connections served concurrently, one
//! request per connection. The sockets live here so that the control plane stays sans-IO.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use control::http::{handle, Api, Response};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

fn to_hyper(r: Response) -> hyper::Response<Full<Bytes>> {
    let mut b = hyper::Response::builder()
        .status(r.status)
        .header(hyper::header::CONTENT_TYPE, r.content_type)
        .header(hyper::header::CACHE_CONTROL, "no-store");
    if r.status == 401 {
        b = b.header(hyper::header::WWW_AUTHENTICATE, "Bearer");
    }
    b.body(Full::new(Bytes::from(r.body))).unwrap_or_else(|_| {
        let mut x = hyper::Response::new(Full::new(Bytes::new()));
        *x.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        x
    })
}

fn answer(api: &Api, req: &hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    // the body is never read (no route takes one); hyper closes the connection after the reply
    let target = req.uri().to_string();
    let headers: Vec<(&str, &[u8])> = req.headers().iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
    to_hyper(handle(api, req.method().as_str(), &target, &headers))
}

/// One connection slot, given back when the connection ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
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
            let conn = builder.serve_connection(
                TokioIo::new(stream),
                service_fn({
                    let api = api.clone();
                    move |req| {
                        let r = answer(&api, &req);
                        async move { Ok::<_, Infallible>(r) }
                    }
                }),
            );
            tokio::spawn(async move {
                let _slot = slot;
                match tokio::time::timeout(api.opts.connection_timeout, conn).await {
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
