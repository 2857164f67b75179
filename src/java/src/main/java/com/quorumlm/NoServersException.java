package com.quorumlm;

/** {@link Status#NO_SERVERS}: No license source is configured: the vendor variable, {@code QLM_LICENSE} and {@code QLM_SERVERS} are all unset. */
public class NoServersException extends LicenseException {
    private static final long serialVersionUID = 1L;

    public NoServersException(String message) {
        super(Status.NO_SERVERS.code(), message);
    }
}
