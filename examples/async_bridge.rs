//! Blocking-style code inside an async program: a synchronous plugin API
//! whose host calls wait on tokio channels and timers, through
//! `switchback::future`.
//!
//! Run it with `cargo run --example async_bridge` (on x86-64 Linux, where
//! tokio is a dev-dependency of this crate).

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod bridge {
    use std::time::Duration;

    use switchback::future::{CoroutineFuture, Suspender};
    use tokio::sync::{mpsc, oneshot};
    use tokio::task::LocalSet;

    /// A request to the async "database": a key and where to send the
    /// answer.
    type Request = (&'static str, oneshot::Sender<u64>);

    /// What the host offers to plugins: plain, synchronous methods, as a C
    /// library's callbacks or an interpreter's host functions would be.
    struct Host<'a> {
        name: &'static str,
        suspender: &'a Suspender,
        database: mpsc::Sender<Request>,
    }

    impl Host<'_> {
        /// Looks `key` up in the async database, waiting for the answer
        /// without blocking the thread.
        fn lookup(&self, key: &'static str) -> u64 {
            let (reply, answer) = oneshot::channel();
            self.suspender
                .block_on(self.database.send((key, reply)))
                .expect("the database is running");
            self.suspender
                .block_on(answer)
                .expect("the database answers")
        }

        fn sleep(&self, ms: u64) {
            self.suspender
                .block_on(tokio::time::sleep(Duration::from_millis(ms)));
        }
    }

    /// A plugin: ordinary synchronous code, a few calls deep.
    fn plugin_main(host: &Host<'_>, keys: &[&'static str]) -> u64 {
        let mut total = 0;
        for &key in keys {
            let value = host.lookup(key);
            println!("[plugin {}] {key} = {value}", host.name);
            total += value;
        }
        total
    }

    /// Prints when a plugin's stack is unwound.
    struct CleanUp(&'static str);

    impl Drop for CleanUp {
        fn drop(&mut self) {
            println!("[plugin {}] cancelled: its stack was unwound", self.0);
        }
    }

    /// Answers requests one at a time, each after a short delay.
    async fn database(mut requests: mpsc::Receiver<Request>) {
        while let Some((key, reply)) = requests.recv().await {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let value = key.bytes().map(u64::from).sum::<u64>() % 100;
            let _ = reply.send(value);
        }
    }

    fn spawn_plugin(
        name: &'static str,
        keys: &'static [&'static str],
        database: &mpsc::Sender<Request>,
    ) -> tokio::task::JoinHandle<u64> {
        let database = database.clone();
        tokio::task::spawn_local(CoroutineFuture::new(move |suspender| {
            let host = Host {
                name,
                suspender,
                database,
            };
            plugin_main(&host, keys)
        }))
    }

    pub fn main() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        LocalSet::new().block_on(&runtime, async {
            let (requests, incoming) = mpsc::channel(8);
            tokio::task::spawn_local(database(incoming));

            // Two plugins run concurrently on one thread; their lookups
            // interleave at the database.
            let a = spawn_plugin("a", &["apples", "pears", "plums"], &requests);
            let b = spawn_plugin("b", &["figs", "limes"], &requests);
            let (a, b) = (a.await.unwrap(), b.await.unwrap());
            println!("[main] plugin a returned {a}, plugin b returned {b}");

            // A plugin that takes too long is cancelled by dropping it.
            let slow = CoroutineFuture::new(move |suspender| {
                let _clean_up = CleanUp("slow");
                let host = Host {
                    name: "slow",
                    suspender,
                    database: requests,
                };
                println!("[plugin slow] sleeping for an hour");
                host.sleep(3_600_000);
                unreachable!("cancelled before waking up");
            });
            let outcome = tokio::time::timeout(Duration::from_millis(20), slow).await;
            println!("[main] the slow plugin timed out: {}", outcome.is_err());
        });
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn main() {
    bridge::main();
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn main() {
    println!("this example uses tokio, a dev-dependency on x86-64 Linux only");
}
