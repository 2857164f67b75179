package com.quorumlm;

/** {@link Status#INVALID_ARGUMENT}: An argument was refused before anything was sent (a feature too long, a count of 0, text that is not UTF-8); the message names it. */
public class InvalidArgumentException extends LicenseException {
    private static final long serialVersionUID = 1L;

    public InvalidArgumentException(String message) {
        super(Status.INVALID_ARGUMENT.code(), message);
    }
}
