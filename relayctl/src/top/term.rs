//! The terminal under the live view: raw input (keys without Enter, no echo, Ctrl-C as
//! a key), the alternate screen and a hidden cursor, each undone on every way out
//! (return, panic, SIGTERM/SIGHUP/SIGINT). Plain ANSI sequences and termios through
//! libc; docs/dependencies.md says why not ratatui/crossterm.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The terminal settings found on entry, to put back.
static SAVED: Mutex<Option<libc::termios>> = Mutex::new(None);
/// A signal asked the view to end.
static QUIT: AtomicBool = AtomicBool::new(false);
/// The window changed size.
static RESIZED: AtomicBool = AtomicBool::new(false);

const ENTER: &str = "\x1b[?1049h\x1b[?25l";
const LEAVE: &str = "\x1b[?25h\x1b[?1049l";

extern "C" fn on_signal(sig: libc::c_int) {
    // only an atomic store: async-signal-safe
    if sig == libc::SIGWINCH {
        RESIZED.store(true, Ordering::Relaxed);
    } else {
        QUIT.store(true, Ordering::Relaxed);
    }
}

/// What ended a wait.
#[derive(Debug, PartialEq, Eq)]
pub enum Wake {
    /// Time for the next sample.
    Timeout,
    /// Redraw the frame at the new size.
    Resized,
    /// q, Ctrl-C, Ctrl-D, end of input or a signal.
    Quit,
}

/// The terminal in live-view mode while this lives.
pub struct Screen(());

impl Screen {
    /// Raw mode and the alternate screen; an error when stdin or stdout is not a terminal.
    pub fn enter() -> Result<Screen, String> {
        if unsafe { libc::isatty(0) != 1 || libc::isatty(1) != 1 } {
            return Err("the live view needs a terminal; use --once to print one frame".into());
        }
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
            return Err(format!("reading the terminal's settings: {}", std::io::Error::last_os_error()));
        }
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
        let mut raw = t;
        raw.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG | libc::IEXTEN);
        raw.c_iflag &= !(libc::IXON | libc::ICRNL);
        raw.c_cc[libc::VMIN] = 0;
        raw.c_cc[libc::VTIME] = 0;
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        unsafe {
            for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGWINCH] {
                libc::signal(sig, handler);
            }
            libc::tcsetattr(0, libc::TCSANOW, &raw);
        }
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            hook(info)
        }));
        print(ENTER);
        Ok(Screen(()))
    }

    /// The window's (columns, rows); 80x24 when the terminal does not say.
    pub fn size() -> (usize, usize) {
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0 && ws.ws_row > 0 {
            (ws.ws_col as usize, ws.ws_row as usize)
        } else {
            (80, 24)
        }
    }

    /// Paint a frame from the top-left corner, clearing what the last one left.
    pub fn draw(&self, frame: &str) {
        let mut out = String::with_capacity(frame.len() + 64);
        out.push_str("\x1b[H");
        for (i, line) in frame.split('\n').enumerate() {
            if i > 0 {
                out.push_str("\r\n");
            }
            out.push_str(line);
            out.push_str("\x1b[K");
        }
        out.push_str("\x1b[J");
        print(&out);
    }

    /// Wait up to `timeout` for a key, a resize or a signal.
    pub fn wait(&self, timeout: Duration) -> Wake {
        if QUIT.load(Ordering::Relaxed) {
            return Wake::Quit;
        }
        if RESIZED.swap(false, Ordering::Relaxed) {
            return Wake::Resized;
        }
        let mut fd = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        let n = unsafe { libc::poll(&mut fd, 1, ms) };
        if n < 0 {
            // EINTR: a signal; the flags say which
            return if QUIT.load(Ordering::Relaxed) {
                Wake::Quit
            } else if RESIZED.swap(false, Ordering::Relaxed) {
                Wake::Resized
            } else {
                Wake::Timeout
            };
        }
        if n == 0 {
            return Wake::Timeout;
        }
        let mut buf = [0u8; 64];
        let got = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if got == 0 {
            return Wake::Quit; // end of input: nobody left to press q
        }
        if got < 0 {
            return Wake::Timeout;
        }
        if buf[..got as usize].iter().any(|b| matches!(b, b'q' | b'Q' | 0x03 | 0x04)) {
            Wake::Quit
        } else {
            // any other key: redraw at once
            Wake::Resized
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Put the terminal back as it was found (once; later calls do nothing).
fn restore() {
    let saved = SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(t) = saved {
        print(LEAVE);
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
    }
}

fn print(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}
