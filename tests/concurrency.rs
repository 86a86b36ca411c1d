//! Many threads binding and dropping listeners at once. Alone in its test binary, since it
//! counts the process's descriptors.

use std::sync::Barrier;

/// The process's open descriptors (Linux); elsewhere nothing is counted.
fn open_fds() -> Option<usize> {
    #[cfg(target_os = "linux")]
    return Some(std::fs::read_dir("/proc/self/fd").unwrap().count());
    #[cfg(not(target_os = "linux"))]
    return None;
}

#[test]
fn thirty_two_threads_bind_and_drop_200_listeners_each() {
    let before = open_fds();
    let barrier = Barrier::new(32);
    let applied = maxlisten::system_limit();
    std::thread::scope(|scope| {
        for t in 0..32 {
            let barrier = &barrier;
            scope.spawn(move || {
                barrier.wait();
                for i in 0..200 {
                    let listener = if (t + i) % 2 == 0 {
                        maxlisten::ListenerBuilder::new().bind("127.0.0.1:0")
                    } else {
                        maxlisten::ListenerBuilder::new()
                            .tcp_nodelay(true)
                            .bind("localhost:0")
                    }
                    .unwrap_or_else(|e| panic!("thread {t} bind {i}: {e}"));
                    assert_eq!(listener.backlog().applied(), applied);
                }
            });
        }
    });
    assert_eq!(open_fds(), before, "descriptors leaked");
}
