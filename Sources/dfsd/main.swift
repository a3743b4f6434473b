import MicroHTTPD

ProcessTuning.limitMallocArenas(2)
// Block SIGINT/SIGTERM before any thread exists, so every thread inherits the mask and `sigwait` in
// `Serve.waitForSignal` is the one place that receives them.
TerminationSignals.block()
ProcessTuning.releaseFreeMemory(every: 2)
DFSD.main()
