#if canImport(Glibc)
    @preconcurrency import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Shutdown on SIGINT/SIGTERM without signal handlers: block the signals, then wait for one in main.
public enum TerminationSignals {
    /// Ignore SIGPIPE, block SIGINT/SIGTERM in this thread (threads started later inherit it). Call first in main.
    public static func block() {
        signal(SIGPIPE, SIG_IGN)
        var set = terminationSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Wait for SIGINT or SIGTERM; returns the signal number.
    public static func wait() -> Int32 {
        var set = terminationSet()
        var signalNumber: Int32 = 0
        // sigwait fails only for an invalid set, which terminationSet() never builds.
        _ = sigwait(&set, &signalNumber)
        return signalNumber
    }

    private static func terminationSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        return set
    }
}
