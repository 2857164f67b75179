package com.quorumlm;

/**
 * A call of the library failed. {@link #status()} is the C status code; subclasses name the
 * failures a program treats differently. {@link Status#BAD_HANDLE}, {@link Status#REJECTED},
 * {@link Status#INTERNAL} and codes this binding does not know are thrown as this class.
 */
public class LicenseException extends Exception {
    private static final long serialVersionUID = 1L;

    private final Status status;
    private final int code;

    public LicenseException(int code, String message) {
        super(message);
        this.code = code;
        this.status = Status.of(code);
    }

    /** The status ({@link Status#UNKNOWN} for a code this binding does not know). */
    public Status status() {
        return status;
    }

    /** The C status code as the library returned it. */
    public int code() {
        return code;
    }
}
