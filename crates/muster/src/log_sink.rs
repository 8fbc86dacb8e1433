//! Where log lines go: a buffer that a writer thread empties into stderr in batches.
//!
//! Every request writes a log line, so the hand-over of a line to the thread that writes it is
//! on every request's path. It was `tracing-appender`'s non-blocking writer: each line a new
//! allocation and a message on a channel, and the writer thread woken for nearly every line,
//! at 20,000 requests a second. `perf record` on `GET /Users/{id}` under load put about 6% of
//! the server's samples on that: the writer thread's wake-ups, its spinning and yielding on the
//! empty channel, and one `write` for every few lines (docs/benchmarks.md, "The log writer").
//!
//! Here a line is appended to a shared buffer under a mutex, with no allocation of its own. The
//! writer thread is woken only when a line lands in an empty buffer. It then lets lines gather
//! for [`GATHER`] and writes all of them with one `write`. At any rate that is one wake-up and
//! one system call for each batch, however many lines it holds.
//!
//! What it promises:
//! - A line reaches stderr within about [`GATHER`] of being logged.
//! - Lines keep their order, and a line is never split or interleaved with another.
//! - When the guard is dropped (at the end of `main`), everything logged before is written.
//! - If stderr falls so far behind that [`LIMIT`] bytes wait, further lines are dropped (as
//!   the channel did when full) and a note of how many is written when it catches up. A
//!   request never waits for the disk or the pipe behind stderr.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer thread lets lines gather after the first one arrives.
pub const GATHER: Duration = Duration::from_millis(25);

/// The most bytes that may wait; lines beyond are dropped and counted.
pub const LIMIT: usize = 16 * 1024 * 1024;

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    dropped: u64,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while the lock was held leaves bytes that are still good to write.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the log subscriber writes through: cheap to clone, one per line.
#[derive(Clone)]
pub struct LogSink {
    shared: Arc<Shared>,
}

/// Stops the writer thread when dropped, after it has written every line logged before.
pub struct SinkGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread, writing to `out`.
pub fn spawn<W: Write + Send + 'static>(out: W) -> std::io::Result<(LogSink, SinkGuard)> {
    let shared = Arc::new(Shared::default());
    let thread = std::thread::Builder::new()
        .name("muster-log".into())
        .spawn({
            let shared = shared.clone();
            move || run(&shared, out)
        })?;
    Ok((
        LogSink {
            shared: shared.clone(),
        },
        SinkGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

fn run<W: Write>(shared: &Shared, mut out: W) {
    let mut spare = Vec::new();
    loop {
        let closed = {
            let mut p = shared.lock();
            while p.bytes.is_empty() && p.dropped == 0 && !p.closed {
                p = shared.wake.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            p.closed
        };
        if !closed {
            std::thread::sleep(GATHER);
        }
        let (dropped, closed) = {
            let mut p = shared.lock();
            std::mem::swap(&mut p.bytes, &mut spare);
            (std::mem::take(&mut p.dropped), p.closed)
        };
        // A failed write (stderr closed) loses these lines; there is nowhere to report it.
        let _ = out.write_all(&spare);
        if dropped > 0 {
            let _ = writeln!(
                out,
                "muster: {dropped} log lines were dropped: stderr could not keep up"
            );
        }
        let _ = out.flush();
        // Keep the allocation for the next batch unless one burst made it huge.
        spare.clear();
        if spare.capacity() > 1024 * 1024 {
            spare = Vec::new();
        }
        if closed && shared.lock().bytes.is_empty() {
            return;
        }
    }
}

impl Drop for SinkGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Write for LogSink {
    /// Takes the whole line, always: tracing-subscriber hands over each formatted line in one
    /// call.
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let was_empty = {
            let mut p = self.shared.lock();
            if p.bytes.len() + line.len() > LIMIT {
                p.dropped += 1;
                return Ok(line.len());
            }
            let was_empty = p.bytes.is_empty();
            p.bytes.extend_from_slice(line);
            was_empty
        };
        // Only the first line of a batch wakes the writer: the rest find it gathering.
        if was_empty {
            self.shared.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = LogSink;

    fn make_writer(&'a self) -> LogSink {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output that records each `write` it is given.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Recorder {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut w) = self.0.lock() {
                w.push(b.to_vec());
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Recorder {
        fn text(&self) -> String {
            let writes = self.0.lock().map(|w| w.concat()).unwrap_or_default();
            String::from_utf8_lossy(&writes).into_owned()
        }
        fn writes(&self) -> usize {
            self.0.lock().map(|w| w.len()).unwrap_or(0)
        }
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_in_order_and_in_few_writes() {
        let out = Recorder::default();
        let (sink, guard) = spawn(out.clone()).unwrap_or_else(|e| panic!("{e}"));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        let _ = sink.write(format!("thread {t} line {i}\n").as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            let _ = t.join();
        }
        drop(guard);
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.len(),
            8000,
            "every line is written once the guard drops"
        );
        for t in 0..4 {
            let mine: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("thread {t} line ")))
                .map(|n| n.parse().unwrap_or(usize::MAX))
                .collect();
            assert_eq!(
                mine,
                (0..2000).collect::<Vec<_>>(),
                "thread {t}'s lines in order"
            );
        }
        assert!(
            out.writes() < 100,
            "8,000 lines went out in {} writes: the writer batches",
            out.writes()
        );
    }

    #[test]
    fn a_line_is_written_within_the_gathering_time() {
        let out = Recorder::default();
        let (mut sink, _guard) = spawn(out.clone()).unwrap_or_else(|e| panic!("{e}"));
        let _ = sink.write(b"hello\n");
        let started = std::time::Instant::now();
        while out.text().is_empty() {
            assert!(
                started.elapsed() < GATHER * 40,
                "the line was not written while the sink stayed open"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(out.text(), "hello\n");
    }

    #[test]
    fn past_the_limit_lines_are_dropped_and_counted() {
        /// An output that blocks until let go, as a full pipe does.
        struct Stuck(Arc<(Mutex<bool>, Condvar)>, Recorder);
        impl Write for Stuck {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                let (m, c) = &*self.0;
                let mut go = m.lock().unwrap_or_else(|e| e.into_inner());
                while !*go {
                    go = c.wait(go).unwrap_or_else(|e| e.into_inner());
                }
                self.1.write(b)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let out = Recorder::default();
        let (mut sink, guard) =
            spawn(Stuck(gate.clone(), out.clone())).unwrap_or_else(|e| panic!("{e}"));
        // The first line is taken by the writer, which then blocks on the stuck output.
        let _ = sink.write(b"first\n");
        std::thread::sleep(GATHER * 4);
        let line = vec![b'x'; 1024 * 1024 - 1];
        let mut line = line;
        line.push(b'\n');
        for _ in 0..20 {
            let _ = sink.write(&line);
        }
        {
            let (m, c) = &*gate;
            *m.lock().unwrap_or_else(|e| e.into_inner()) = true;
            c.notify_all();
        }
        drop(guard);
        let text = out.text();
        assert!(
            text.starts_with("first\n"),
            "{}",
            &text[..20.min(text.len())]
        );
        assert_eq!(
            text.lines().filter(|l| l.starts_with('x')).count(),
            16,
            "16 MiB of lines wait; the rest are dropped"
        );
        assert!(
            text.contains("muster: 4 log lines were dropped"),
            "the drop is reported"
        );
    }
}
