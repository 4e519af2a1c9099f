//! Log lines gathered in memory and written out by a thread of their own (`log-writer`)
//! in batches: every [`FLUSH_EVERY`], or sooner once [`BATCH_BYTES`] have gathered.
//!
//! A thread that logs appends its formatted line under a lock and goes on: no system
//! call, no thread woken. A queue that woke the writer for each line (tracing-appender's)
//! cost a busy server a `write` and a wake-up for almost every request, because the
//! writer kept up and so its batches held one or two lines. Nothing is dropped: once
//! [`MOST_BYTES`] are waiting, the thread that logs writes them out itself, and the
//! others wait for it.

use std::{
    io::{self, Write},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    thread::JoinHandle,
    time::Duration,
};

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Gathered bytes that get the writer going before its time.
const BATCH_BYTES: usize = 64 * 1024;
/// Gathered bytes past which the thread that logs writes them itself.
const MOST_BYTES: usize = 8 * 1024 * 1024;
/// What a batch's buffer is cut back to after a burst, so a quiet server does not keep
/// a burst's memory.
const KEPT_BYTES: usize = 256 * 1024;

/// Where the batches go, and the lines gathered for the next one.
struct Shared<W> {
    gathered: Mutex<Gathered>,
    /// Signalled when a batch is ready early, and at shutdown.
    ready: Condvar,
    /// Taken while the gathered lines are still locked, so batches are written in the
    /// order they were taken, whoever writes them.
    out: Mutex<W>,
}

#[derive(Default)]
struct Gathered {
    lines: Vec<u8>,
    closing: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A thread that panicked while logging leaves bytes, not broken invariants.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<W: Write> Shared<W> {
    /// Takes what has gathered and writes it, in order with every other batch.
    fn write_out(&self, mut gathered: MutexGuard<'_, Gathered>) {
        if gathered.lines.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut gathered.lines);
        let mut out = lock(&self.out);
        drop(gathered);
        // Nowhere to report a failure to write the log: the lines are lost, as a
        // direct write to a closed stderr would lose them.
        let _ = out.write_all(&lines).and_then(|()| out.flush());
        drop(out);
        if lines.capacity() <= KEPT_BYTES {
            let mut gathered = lock(&self.gathered);
            if gathered.lines.is_empty() {
                // Reuse the allocation for the next batch.
                let mut lines = lines;
                lines.clear();
                gathered.lines = lines;
            }
        }
    }
}

/// The writer the subscriber logs through ([`MakeWriter`]).
pub struct BatchWriter<W> {
    shared: Arc<Shared<W>>,
}

impl<W> Clone for BatchWriter<W> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

/// Stops the writer thread when dropped, after it has written what was gathered.
#[must_use = "dropping the guard stops the log writer"]
pub struct FlushGuard {
    stop: Box<dyn Fn() + Send + Sync>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        (self.stop)();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A writer into `out` and its guard; the thread is named `log-writer`.
pub fn batched<W: Write + Send + 'static>(out: W) -> io::Result<(BatchWriter<W>, FlushGuard)> {
    let shared = Arc::new(Shared {
        gathered: Mutex::new(Gathered::default()),
        ready: Condvar::new(),
        out: Mutex::new(out),
    });
    let worker = shared.clone();
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || {
            loop {
                let gathered = lock(&worker.gathered);
                let (gathered, _) = worker
                    .ready
                    .wait_timeout_while(gathered, FLUSH_EVERY, |g| {
                        !g.closing && g.lines.len() < BATCH_BYTES
                    })
                    .unwrap_or_else(PoisonError::into_inner);
                let closing = gathered.closing;
                worker.write_out(gathered);
                if closing {
                    return;
                }
            }
        })?;
    let stopping = shared.clone();
    let guard = FlushGuard {
        stop: Box::new(move || {
            lock(&stopping.gathered).closing = true;
            stopping.ready.notify_one();
        }),
        thread: Some(thread),
    };
    Ok((BatchWriter { shared }, guard))
}

impl<W: Write> Write for &BatchWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut gathered = lock(&self.shared.gathered);
        gathered.lines.extend_from_slice(buf);
        let len = gathered.lines.len();
        if gathered.closing || len >= MOST_BYTES {
            // The writer is behind (or gone): write them here, holding up the others.
            self.shared.write_out(gathered);
        } else if len >= BATCH_BYTES && len - buf.len() < BATCH_BYTES {
            drop(gathered);
            self.shared.ready.notify_one();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + 'a> MakeWriter<'a> for BatchWriter<W> {
    type Writer = &'a BatchWriter<W>;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shared byte sink that counts its writes.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut sink = self.0.lock().unwrap();
            sink.0.extend_from_slice(buf);
            sink.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_written_in_order_in_few_writes_and_all_by_the_guard() {
        let sink = Sink::default();
        let (writer, guard) = batched(sink.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        (&writer)
                            .write_all(format!("{t} {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let (bytes, writes) = sink.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.lines().count(), 20_000, "every line is written");
        for t in 0..4 {
            let own: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("{t} ")))
                .map(|i| i.parse().unwrap())
                .collect();
            assert_eq!(own, (0..5_000).collect::<Vec<_>>(), "in order");
        }
        assert!(writes < 200, "batched: {writes} writes for 20000 lines");
    }

    #[test]
    fn a_lone_line_is_written_within_the_flush_interval() {
        let sink = Sink::default();
        let (writer, _guard) = batched(sink.clone()).unwrap();
        (&writer).write_all(b"alone\n").unwrap();
        let deadline = std::time::Instant::now() + 20 * FLUSH_EVERY;
        while sink.0.lock().unwrap().0.is_empty() {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(sink.0.lock().unwrap().0, b"alone\n");
    }

    #[test]
    fn past_the_bound_the_logging_thread_writes_itself() {
        let sink = Sink::default();
        let (writer, _guard) = batched(sink.clone()).unwrap();
        let big = vec![b'x'; MOST_BYTES];
        (&writer).write_all(&big).unwrap();
        // Written before `write_all` returned: no wait for the writer thread.
        assert_eq!(sink.0.lock().unwrap().0.len(), MOST_BYTES);
    }
}
