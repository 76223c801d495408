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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    tx: Mutex<Sender<Job>>,
    rx: Arc<Mutex<Receiver<Job>>>,
    /// Threads waiting for work; a job that finds none starts another thread.
    idle: Arc<AtomicUsize>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = channel();
        Pool {
            tx: Mutex::new(tx),
            rx: Arc::new(Mutex::new(rx)),
            idle: Arc::new(AtomicUsize::new(0)),
        }
    })
}

/// Gives this thread a descriptor table of its own and closes its copy of every
/// descriptor from 3 up. Where the table cannot be unshared, nothing is closed (it is
/// the process's), and children inherit as they would from any thread.
fn own_table() {
    if nix::sched::unshare(nix::sched::CloneFlags::CLONE_FILES).is_ok() {
        crate::node::init::close_from(3, 0);
    }
}

fn worker(rx: Arc<Mutex<Receiver<Job>>>, idle: Arc<AtomicUsize>) {
    own_table();
    loop {
        idle.fetch_add(1, Ordering::SeqCst);
        let job = rx.lock().map(|r| r.recv());
        idle.fetch_sub(1, Ordering::SeqCst);
        match job {
            Ok(Ok(job)) => job(),
            _ => return,
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
    if p.idle.load(Ordering::SeqCst) == 0 {
        let (rx, idle) = (p.rx.clone(), p.idle.clone());
        std::thread::Builder::new()
            .name("nslab-spawn".into())
            .spawn(move || worker(rx, idle))?;
    }
    p.tx.lock()
        .map_err(|_| std::io::Error::other("the spawner's queue is poisoned"))?
        .send(job)
        .map_err(|_| std::io::Error::other("the spawner's threads are gone"))?;
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
