package com.quorumlm;

/** The status codes of the C ABI ({@code enum qlm_status}). */
public enum Status {
    OK(0),
    INVALID_ARGUMENT(1),
    BAD_HANDLE(2),
    NO_SERVERS(3),
    UNREACHABLE(4),
    DENIED(5),
    TIMEOUT(6),
    NODE_LOCKED_REFUSED(7),
    SESSION_LOST(8),
    REJECTED(9),
    INTERNAL(10),
    /** A code this binding does not know (a newer library). */
    UNKNOWN(-1);

    private final int code;

    Status(int code) {
        this.code = code;
    }

    /** The C value. */
    public int code() {
        return code;
    }

    /** The status of a C value; {@link #UNKNOWN} for one this binding does not know. */
    public static Status of(int code) {
        for (Status status : values()) {
            if (status.code == code) {
                return status;
            }
        }
        return UNKNOWN;
    }
}
