//! A connection's outgoing frames: encoded by whichever thread produced them straight into one
//! shared buffer, and written in as few system calls as possible.
//!
//! On a socket the thread that queues a frame while nobody is writing writes it itself, with a
//! non-blocking `try_write`: a handler thread that finishes a job sends its outcome without
//! waking the connection's thread. Frames queued while a write is under way are appended to the
//! buffer and go out with the next write of the thread already writing, so a burst of outcomes
//! leaves in one call. When the socket is full, the rest is handed to the connection's writer
//! task, which waits until the socket is writable. On stdio a writer thread does all writes.
//! Frames keep the order in which they were queued.

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::codec::{EncodeError, Encoding};
use crate::protocol::Frame;

/// The write half of a socket connection.
pub(crate) enum Sink {
    Unix(tokio::net::unix::OwnedWriteHalf),
    Tcp(tokio::net::tcp::OwnedWriteHalf),
}

impl Sink {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Unix(w) => w.try_write(buf),
            Sink::Tcp(w) => w.try_write(buf),
        }
    }

    async fn writable(&self) -> io::Result<()> {
        match self {
            Sink::Unix(w) => w.writable().await,
            Sink::Tcp(w) => w.writable().await,
        }
    }
}

/// Largest write the buffer is kept for between writes (a bigger one is freed after use).
const KEEP_CAPACITY: usize = 256 * 1024;

pub(crate) struct Outbox {
    encoding: Encoding,
    state: Mutex<State>,
    /// Wakes the writer task (socket) when it is handed the rest of a write.
    wake: Notify,
    /// Wakes the writer thread (stdio).
    ready: Condvar,
}

struct State {
    /// Frames queued and not yet taken by a writer.
    buf: Vec<u8>,
    /// An emptied buffer kept for the next swap (no allocation per write).
    spare: Vec<u8>,
    /// A thread or the writer task is writing: queueing only appends.
    writing: bool,
    /// The writer task owns the writing (the socket was full).
    handed_off: bool,
    /// A sender of [`Outbox::send_batched`] will call [`Outbox::flush`].
    flush_due: bool,
    closed: bool,
    /// `None` on stdio (the writer thread writes) and once closed.
    sink: Option<Arc<Sink>>,
}

impl Outbox {
    /// An outbox writing to a socket; run [`Outbox::writer_task`] next to it.
    pub(crate) fn socket(encoding: Encoding, sink: Sink) -> Arc<Outbox> {
        Self::new(encoding, Some(Arc::new(sink)))
    }

    /// An outbox whose frames [`Outbox::blocking_writer`] writes.
    pub(crate) fn threaded(encoding: Encoding) -> Arc<Outbox> {
        Self::new(encoding, None)
    }

    fn new(encoding: Encoding, sink: Option<Arc<Sink>>) -> Arc<Outbox> {
        Arc::new(Outbox {
            encoding,
            state: Mutex::new(State {
                buf: Vec::new(),
                spare: Vec::new(),
                writing: false,
                handed_off: false,
                flush_due: false,
                closed: false,
                sink,
            }),
            wake: Notify::new(),
            ready: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Encodes `frame` into the queue and sees that it is written. A frame that cannot be
    /// encoded is not queued (the error says why); on a closed connection nothing is queued.
    pub(crate) fn send(&self, frame: &Frame) -> Result<(), EncodeError> {
        let mut state = self.lock();
        if state.closed {
            return Ok(());
        }
        frame.encode_into(&mut state.buf, self.encoding)?;
        if state.writing {
            return Ok(()); // the writer takes it with its next write
        }
        match state.sink.clone() {
            Some(sink) => {
                state.writing = true;
                self.write_direct(state, &sink);
            }
            None => self.ready.notify_one(),
        }
        Ok(())
    }

    /// Like [`Outbox::send`], but the write is left to a later [`Outbox::flush`] so that frames
    /// queued in between (outcomes of handlers finishing in the same scheduler round) share
    /// it. True when the caller must flush: its frame is the first of the batch.
    pub(crate) fn send_batched(&self, frame: &Frame) -> Result<bool, EncodeError> {
        let mut state = self.lock();
        if state.closed {
            return Ok(false);
        }
        frame.encode_into(&mut state.buf, self.encoding)?;
        if state.writing || state.flush_due {
            return Ok(false);
        }
        if state.sink.is_none() {
            self.ready.notify_one();
            return Ok(false);
        }
        state.flush_due = true;
        Ok(true)
    }

    /// Writes what [`Outbox::send_batched`] queued (unless a write under way takes it).
    pub(crate) fn flush(&self) {
        let mut state = self.lock();
        state.flush_due = false;
        if state.writing || state.closed || state.buf.is_empty() {
            return;
        }
        if let Some(sink) = state.sink.clone() {
            state.writing = true;
            self.write_direct(state, &sink);
        }
    }

    /// Writes the queue from this thread until it is empty, or hands the rest to the writer
    /// task when the socket is full. Called with `writing` set.
    fn write_direct<'a>(&'a self, mut state: MutexGuard<'a, State>, sink: &Sink) {
        loop {
            let mut out = std::mem::take(&mut state.buf);
            state.buf = std::mem::take(&mut state.spare);
            drop(state);
            let result = write_nonblocking(sink, &out);
            state = self.lock();
            match result {
                Ok(n) if n == out.len() => {
                    recycle(&mut state, out);
                    if state.buf.is_empty() || state.closed {
                        state.writing = false;
                        return;
                    }
                }
                Ok(n) => {
                    // Full socket: the unwritten rest goes first, then what was queued since.
                    out.drain(..n);
                    out.append(&mut state.buf);
                    state.buf = out;
                    state.handed_off = true;
                    drop(state);
                    self.wake.notify_one();
                    return;
                }
                Err(_) => {
                    // The peer is gone: the connection's reader sees it and closes.
                    state.buf.clear();
                    state.writing = false;
                    state.closed = true;
                    return;
                }
            }
        }
    }

    /// Finishes the writes handed to it when the socket was full (runs while the connection
    /// lives).
    pub(crate) async fn writer_task(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            while let Some((sink, out)) = self.take_handed_off() {
                let ok = write_async(&sink, &out).await.is_ok();
                let mut state = self.lock();
                recycle(&mut state, out);
                if !ok {
                    state.closed = true;
                    state.buf.clear();
                }
                if state.buf.is_empty() {
                    state.handed_off = false;
                    state.writing = false;
                }
            }
        }
    }

    /// The queue to write when the writer task owns the writing.
    fn take_handed_off(&self) -> Option<(Arc<Sink>, Vec<u8>)> {
        let mut state = self.lock();
        if !state.handed_off || state.closed {
            return None;
        }
        let sink = state.sink.clone()?;
        let out = std::mem::take(&mut state.buf);
        state.buf = std::mem::take(&mut state.spare);
        Some((sink, out))
    }

    /// Writes every queued frame to `out` until the outbox is closed (the stdio transport's
    /// writer thread).
    pub(crate) fn blocking_writer(&self, mut out: impl io::Write) {
        let mut state = self.lock();
        loop {
            while state.buf.is_empty() && !state.closed {
                state = self.ready.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.buf.is_empty() {
                return; // closed and drained
            }
            let frames = std::mem::take(&mut state.buf);
            state.buf = std::mem::take(&mut state.spare);
            drop(state);
            if let Err(e) = out.write_all(&frames) {
                eprintln!("[rrqkit-rust] stdout write failed: {e}");
                self.close();
                return;
            }
            state = self.lock();
            recycle(&mut state, frames);
        }
    }

    /// The connection is gone: nothing queued or queued later is written, and the socket's
    /// write half is released (closed once a write under way returns).
    pub(crate) fn close(&self) {
        let sink = {
            let mut state = self.lock();
            state.closed = true;
            state.buf.clear();
            state.sink.take()
        };
        drop(sink);
        self.wake.notify_one();
        self.ready.notify_all();
    }

    /// Stops taking frames but lets the writer thread write what is queued (stdio at exit).
    pub(crate) fn finish(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

/// Keeps `used`'s allocation for the next write, unless it grew past [`KEEP_CAPACITY`].
fn recycle(state: &mut State, mut used: Vec<u8>) {
    used.clear();
    if used.capacity() <= KEEP_CAPACITY && state.spare.capacity() < used.capacity() {
        state.spare = used;
    }
}

/// Writes as much of `buf` as the socket takes now.
fn write_nonblocking(sink: &Sink, buf: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match sink.try_write(&buf[done..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

async fn write_async(sink: &Sink, buf: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        sink.writable().await?;
        done += write_nonblocking(sink, &buf[done..])?;
    }
    Ok(())
}
