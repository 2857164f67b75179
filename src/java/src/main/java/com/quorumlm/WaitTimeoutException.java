package com.quorumlm;

/** {@link Status#TIMEOUT}: A queued checkout ({@link CheckoutOptions#waitUpTo}) was not granted in time; the request has left the queue. */
public class WaitTimeoutException extends LicenseException {
    private static final long serialVersionUID = 1L;

    public WaitTimeoutException(String message) {
        super(Status.TIMEOUT.code(), message);
    }
}
