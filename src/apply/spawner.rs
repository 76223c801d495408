//! Threads with a descriptor table of their own, nearly empty, to start nodes' inits
//! from. While a lab comes up nslab holds a descriptor per namespace and a netlink
//! socket for each; a child started from a thread that shares that table gets a copy of
//! all of them, and its exec then closes them one by one: at 1,000 nodes, about 2,000
//! closes per init, the largest item of starting an init in perf (0.4 CPU-seconds of a
//! full-isolation `up` of 1,000 nodes). A thread here copies the table once, when it
//! starts, and closes its copy of everything but stdin, stdout and stderr.
//!
//! Work sent here must use no descriptor of the process's table (only paths, and what
//! it opens itself), and must not hand descriptors back: they would not exist there.
//!
//! The threads, and the fork servers they start (see `nodes::forked_init`), last while a
//! [`Session`] is open: when the last one closes they end and the servers are waited
//! for, so no process of nslab outlives the command that started it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

/// A message to a thread: work, or the order to end.
enum Message {
    Work(Job),
    Quit,
}

/// What starting and ending threads must agree on, under one lock.
struct Threads {
    tx: Sender<Message>,
    handles: Vec<JoinHandle<()>>,
    /// Open sessions; the last to close ends the threads.
    sessions: usize,
}

struct Pool {
    threads: Mutex<Threads>,
    rx: Arc<Mutex<Receiver<Message>>>,
    /// Threads waiting for work; a job that finds none starts another thread.
    idle: Arc<AtomicUsize>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = channel();
        Pool {
            threads: Mutex::new(Threads {
                tx,
                handles: Vec::new(),
                sessions: 0,
            }),
            rx: Arc::new(Mutex::new(rx)),
            idle: Arc::new(AtomicUsize::new(0)),
        }
    })
}

fn threads(p: &Pool) -> MutexGuard<'_, Threads> {
    // A thread that panicked holding the lock left the fields consistent: each is
    // changed by one statement.
    p.threads.lock().unwrap_or_else(|e| e.into_inner())
}

/// Gives this thread a descriptor table of its own and closes its copy of every
/// descriptor from 3 up. Where the table cannot be unshared, nothing is closed (it is
/// the process's), and children inherit as they would from any thread.
fn own_table() {
    if nix::sched::unshare(nix::sched::CloneFlags::CLONE_FILES).is_ok() {
        crate::sys::fd::close_from(3, false);
    }
}

fn worker(rx: Arc<Mutex<Receiver<Message>>>, idle: Arc<AtomicUsize>) {
    own_table();
    loop {
        idle.fetch_add(1, Ordering::SeqCst);
        let message = rx.lock().map(|r| r.recv());
        idle.fetch_sub(1, Ordering::SeqCst);
        match message {
            Ok(Ok(Message::Work(job))) => job(),
            // Ending the thread drops its thread-locals: its fork server's socket closes
            // and the server is waited for.
            _ => return,
        }
    }
}

/// Keeps the threads (and their fork servers) while it lives; see the module's comment.
pub struct Session(());

/// Opens a session: the engine holds one while it executes a plan.
pub fn session() -> Session {
    threads(pool()).sessions += 1;
    Session(())
}

impl Drop for Session {
    fn drop(&mut self) {
        let p = pool();
        let mut t = threads(p);
        t.sessions -= 1;
        if t.sessions > 0 {
            return;
        }
        // The lock is held until every thread has ended, so no job can be queued behind
        // the orders to end (it would find no thread), and a new session starts fresh.
        let handles = std::mem::take(&mut t.handles);
        for _ in &handles {
            let _ = t.tx.send(Message::Quit);
        }
        for h in handles {
            let _ = h.join();
        }
    }
}

/// Runs `f` on one of the threads and returns its result.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> std::io::Result<T> {
    let p = pool();
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = done.send(f());
    });
    {
        let mut t = threads(p);
        if p.idle.load(Ordering::SeqCst) == 0 {
            let (rx, idle) = (p.rx.clone(), p.idle.clone());
            let handle = std::thread::Builder::new()
                .name("nslab-spawn".into())
                .spawn(move || worker(rx, idle))?;
            t.handles.push(handle);
        }
        t.tx.send(Message::Work(job))
            .map_err(|_| std::io::Error::other("the spawner's threads are gone"))?;
    }
    result
        .await
        .map_err(|_| std::io::Error::other("the spawner's thread ended without an answer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptors(dir: &str) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn work_runs_with_only_the_standard_descriptors() {
        // Many descriptors in the process's table, as nslab has during `up`.
        let held: Vec<std::fs::File> = (0..200)
            .map(|_| std::fs::File::open("/proc/self/stat").unwrap())
            .collect();
        assert!(descriptors("/proc/thread-self/fd") >= 200);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // Two at once, on one thread or two.
        let counts = rt.block_on(async {
            let a = run(|| descriptors("/proc/thread-self/fd"));
            let b = run(|| descriptors("/proc/thread-self/fd"));
            let (a, b) = tokio::join!(a, b);
            [a.unwrap(), b.unwrap()]
        });
        for n in counts {
            // 0, 1, 2 and the directory being read.
            assert!(n <= 4, "{n} descriptors in the spawner's table");
        }
        assert!(
            descriptors("/proc/thread-self/fd") >= 200,
            "the process kept its own"
        );
        drop(held);
    }
}
