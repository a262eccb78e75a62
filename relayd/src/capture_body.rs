//! A live capture's pcap as an HTTP response body: hyper polls it, it polls the
//! capture stream (control::capture) and, when nothing is queued, sleeps a tick. The
//! stream is dropped with the body, that is when the reply ends or the client goes away,
//! which takes the tap off the call.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use control::capture::{CaptureStream, Next};
use hyper::body::{Body, Bytes, Frame};

/// How long the body waits before looking at an empty queue again: live enough for a
/// person watching Wireshark, a few wake-ups a second for an idle call.
const TICK: Duration = Duration::from_millis(20);

pub struct CaptureBody {
    stream: CaptureStream,
    epoch: Instant,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl CaptureBody {
    pub fn new(stream: CaptureStream) -> CaptureBody {
        CaptureBody { stream, epoch: Instant::now(), sleep: Box::pin(tokio::time::sleep(Duration::ZERO)) }
    }
}

impl Body for CaptureBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        loop {
            match this.stream.poll(this.epoch.elapsed().as_micros() as u64) {
                Next::Data(d) => return Poll::Ready(Some(Ok(Frame::data(Bytes::from(d))))),
                Next::End(why) => {
                    log::debug!("capture stream: ended by {why} after {} bytes", this.stream.written());
                    return Poll::Ready(None);
                }
                Next::Wait => {
                    this.sleep.as_mut().reset(tokio::time::Instant::now() + TICK);
                    if this.sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}
