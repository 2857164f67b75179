package com.quorumlm;

/** {@link Status#SESSION_LOST}: The session was lost (expired on the server, or silent for its TTL); open a new one. */
public class SessionLostException extends LicenseException {
    private static final long serialVersionUID = 1L;

    public SessionLostException(String message) {
        super(Status.SESSION_LOST.code(), message);
    }
}
