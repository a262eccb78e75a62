//! Does io_uring zero-copy send (SENDMSG_ZC) pay for media packets? Sends the same
//! datagrams with IORING_OP_SENDMSG and IORING_OP_SENDMSG_ZC, batched 64 per submit like
//! the relay's workers, and prints ns per packet for each size and the ratio.
//!
//!     cargo run --release -p bench --bin zc_send [-- PACKETS]

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::Instant;

use io_uring::{opcode, types, IoUring};

const BATCH: usize = 64;

fn run(ring: &mut IoUring, fd: i32, size: usize, packets: usize, zc: bool) -> f64 {
    let mut buf = vec![0x80u8; size];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr() as *mut _, iov_len: size };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    let t0 = Instant::now();
    let mut sent = 0;
    while sent < packets {
        let n = BATCH.min(packets - sent);
        for _ in 0..n {
            let e = if zc {
                opcode::SendMsgZc::new(types::Fd(fd), &msg as *const _).build()
            } else {
                opcode::SendMsg::new(types::Fd(fd), &msg as *const _).build()
            };
            unsafe { ring.submission().push(&e).unwrap() };
        }
        // every send completes once; a zero-copy send also posts a notification when
        // the kernel is done with the buffer
        let mut want = if zc { 2 * n } else { n };
        ring.submit_and_wait(1).unwrap();
        while want > 0 {
            want = want.saturating_sub(ring.completion().count());
            if want > 0 {
                ring.submit_and_wait(1).unwrap();
            }
        }
        sent += n;
    }
    t0.elapsed().as_nanos() as f64 / packets as f64
}

fn main() {
    let packets: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    // drain the receiver so the loopback path stays realistic
    let rx2 = rx.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut b = [0u8; 65536];
        loop {
            let _ = rx2.recv(&mut b);
        }
    });
    let mut ring = IoUring::new(1024).unwrap();
    println!("| payload bytes | sendmsg ns/pkt | sendmsg_zc ns/pkt | zc / copy |");
    println!("|---|---|---|---|");
    for size in [172usize, 1200, 8000, 32000] {
        // warm up, then alternate to spread machine noise over both
        run(&mut ring, tx.as_raw_fd(), size, 5000, false);
        run(&mut ring, tx.as_raw_fd(), size, 5000, true);
        let mut copy = 0.0;
        let mut zc = 0.0;
        for _ in 0..3 {
            copy += run(&mut ring, tx.as_raw_fd(), size, packets / 3, false);
            zc += run(&mut ring, tx.as_raw_fd(), size, packets / 3, true);
        }
        println!("| {size} | {:.0} | {:.0} | {:.2} |", copy / 3.0, zc / 3.0, zc / copy);
    }
}
