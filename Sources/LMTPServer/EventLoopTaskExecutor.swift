import NIOCore

/// Runs a task's jobs on one event loop: each connection is served by a task that prefers its
/// channel's event loop, so reading a command, answering it and resuming after a delivery need
/// no hand-off between the event loop and the cooperative pool (each such hand-off is a thread
/// wake-up; under load they were most of the server's context switches). Work started from the
/// loop must therefore not block: blocking calls go to a thread pool, as everywhere else.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
