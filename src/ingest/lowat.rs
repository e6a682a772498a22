//! Fewer wake-ups per message under load: the socket's receive low-water
//! mark (`SO_RCVLOWAT`, socket(7)).
//!
//! Mosquitto writes every PUBLISH on its own, and the kernel wakes the
//! runtime thread for each write that lands in our socket: at 20,000
//! messages/s that was one wake-up (a context switch, an `epoll_wait`
//! return and a `recv`) for every two or three messages. While messages
//! are flowing the connection raises the low-water mark, so the kernel
//! wakes us only once that many bytes are queued, and a timer of
//! `mqtt.read_linger_ms` lowers it again; lowering it signals readiness at
//! once if anything is queued (Linux `tcp_set_rcvlowat`). When the timer
//! finds the socket empty the mark stays low, so a quiet connection is
//! read as soon as a byte arrives: the linger costs latency only while
//! messages keep coming, and at most the linger.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use tokio::time::Instant;

/// The low-water mark of one TCP connection (a duplicate of its
/// descriptor, so it stays valid whatever the stream does), and when the
/// raised mark is due to be lowered.
pub struct LowWater {
    fd: OwnedFd,
    high_bytes: i32,
    linger: Duration,
    /// `Some` while the mark is raised.
    due: Option<Instant>,
}

impl LowWater {
    /// `high_bytes`: how many queued bytes wake the reader early while the
    /// mark is raised; `linger`: how long it stays raised.
    pub fn new(socket: &impl AsFd, high_bytes: usize, linger: Duration) -> io::Result<Self> {
        Ok(LowWater {
            fd: socket.as_fd().try_clone_to_owned()?,
            high_bytes: i32::try_from(high_bytes).unwrap_or(i32::MAX),
            linger,
            due: None,
        })
    }

    /// When the raised mark is to be lowered; `None` while it is low.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Messages are flowing: wake the reader only for `high_bytes`, until
    /// the linger is over. Raising a raised mark keeps its due time.
    pub fn raise(&mut self) -> io::Result<()> {
        if self.due.is_none() {
            set_rcvlowat(self.fd.as_fd(), self.high_bytes)?;
            self.due = Some(Instant::now() + self.linger);
        }
        Ok(())
    }

    /// The linger is over: back to one byte, which makes the socket
    /// readable at once if anything is queued.
    pub fn lower(&mut self) -> io::Result<()> {
        if self.due.is_some() {
            set_rcvlowat(self.fd.as_fd(), 1)?;
            self.due = None;
        }
        Ok(())
    }
}

#[allow(unsafe_code)]
fn set_rcvlowat(fd: BorrowedFd<'_>, bytes: i32) -> io::Result<()> {
    let v: libc::c_int = bytes;
    // SAFETY: `fd` is a live descriptor borrowed for the call; the option
    // value points to a `c_int` on this stack frame and its exact size is
    // passed, as setsockopt(2) requires for SO_RCVLOWAT.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            std::ptr::from_ref(&v).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// What the linger relies on, checked against this kernel: a raised
    /// mark keeps a few bytes from making the socket readable, a full wake
    /// of bytes does, and lowering the mark makes queued bytes readable at
    /// once.
    #[tokio::test]
    async fn the_kernel_holds_small_reads_back_until_the_mark_is_lowered() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (ours, theirs) = tokio::join!(TcpStream::connect(l.local_addr().unwrap()), l.accept());
        let (ours, mut theirs) = (ours.unwrap(), theirs.unwrap().0);
        let mut mark = LowWater::new(&ours, 4096, Duration::from_millis(1)).unwrap();

        mark.raise().unwrap();
        assert!(mark.due().is_some());
        theirs.write_all(&[7u8; 100]).await.unwrap();
        assert!(
            readable_soon(&ours).await.is_err(),
            "100 bytes under a 4096-byte mark made the socket readable"
        );
        mark.lower().unwrap();
        assert!(mark.due().is_none());
        readable_soon(&ours)
            .await
            .expect("lowering the mark signals the queued bytes")
            .unwrap();
        let mut buf = [0u8; 8192];
        assert_eq!(ours.try_read(&mut buf).unwrap(), 100);

        mark.raise().unwrap();
        theirs.write_all(&[7u8; 5000]).await.unwrap();
        readable_soon(&ours)
            .await
            .expect("a full wake of bytes makes it readable")
            .unwrap();
    }

    async fn readable_soon(
        s: &TcpStream,
    ) -> Result<std::io::Result<()>, tokio::time::error::Elapsed> {
        tokio::time::timeout(Duration::from_millis(200), s.readable()).await
    }
}
