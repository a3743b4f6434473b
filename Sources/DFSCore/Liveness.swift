/// What the directory concludes from a file server's heartbeats.
public enum Liveness: String, Sendable, Equatable {
    /// Heartbeating: gets new files.
    case live
    /// Missed heartbeats for a while: gets no new files, still serves reads.
    case stale
    /// Silent for longer than the dead threshold.
    case dead

    /// Classifies a server by the time since its last heartbeat (all times in milliseconds).
    public static func of(lastHeartbeatMs: Int64, nowMs: Int64, staleAfterMs: Int64, deadAfterMs: Int64) -> Liveness {
        let silence = nowMs - lastHeartbeatMs
        if silence >= deadAfterMs { return .dead }
        if silence >= staleAfterMs { return .stale }
        return .live
    }
}
