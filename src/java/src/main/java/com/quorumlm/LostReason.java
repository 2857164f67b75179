package com.quorumlm;

/** Why a session was lost. */
public enum LostReason {
    /** The cluster no longer knows the session (it expired there). */
    EXPIRED,
    /** No server answered the heartbeats for the session's TTL. */
    UNREACHABLE,
    /** A reason this binding does not know (a newer library). */
    UNKNOWN;

    static LostReason of(int code) {
        return switch (code) {
            case 1 -> EXPIRED;
            case 2 -> UNREACHABLE;
            default -> UNKNOWN;
        };
    }
}
