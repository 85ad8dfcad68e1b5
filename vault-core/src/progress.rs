//! Progress of long loops over many credentials (drill, rekey, enrolment), told to whoever
//! watches. The library never prints: a caller that wants progress (the CLI on a terminal)
//! runs the operation inside [`watch`], and the loops report to that watcher, on this thread
//! only, for the length of the call; with no watcher a step costs a thread-local read.

use std::cell::RefCell;
use std::rc::Rc;

/// Told of each step of a long loop.
pub trait Watcher {
    /// `done` of `total` items of `task` are finished (`done == total` at the end).
    fn step(&self, task: &str, done: usize, total: usize);
}

thread_local! {
    static WATCHER: RefCell<Option<Rc<dyn Watcher>>> = const { RefCell::new(None) };
}

/// Runs `work` with `watcher` told of the progress of every loop inside it (on this thread),
/// and restores the previous watcher afterwards, also when `work` panics.
pub fn watch<T>(watcher: Rc<dyn Watcher>, work: impl FnOnce() -> T) -> T {
    struct Restore(Option<Rc<dyn Watcher>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            WATCHER.with(|w| *w.borrow_mut() = previous);
        }
    }
    let _restore = Restore(WATCHER.with(|w| w.borrow_mut().replace(watcher)));
    work()
}

/// Tells the watcher, if any, that `done` of `total` items of `task` are finished.
pub(crate) fn step(task: &str, done: usize, total: usize) {
    let watcher = WATCHER.with(|w| w.borrow().clone());
    if let Some(watcher) = watcher {
        watcher.step(task, done, total);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    #[derive(Default)]
    struct Seen(RefCell<Vec<(String, usize, usize)>>);

    impl Watcher for Seen {
        fn step(&self, task: &str, done: usize, total: usize) {
            self.0.borrow_mut().push((task.to_owned(), done, total));
        }
    }

    #[test]
    fn steps_reach_the_watcher_only_inside_watch_and_nested_watchers_restore_the_outer() {
        step("before", 1, 1);
        let outer = Rc::new(Seen::default());
        let inner = Rc::new(Seen::default());
        watch(outer.clone(), || {
            step("a", 1, 2);
            watch(inner.clone(), || step("b", 1, 1));
            step("a", 2, 2);
        });
        step("after", 1, 1);
        assert_eq!(
            *outer.0.borrow(),
            vec![("a".to_owned(), 1, 2), ("a".to_owned(), 2, 2)]
        );
        assert_eq!(*inner.0.borrow(), vec![("b".to_owned(), 1, 1)]);
    }
}
