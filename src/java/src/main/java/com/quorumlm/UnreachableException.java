package com.quorumlm;

/** {@link Status#UNREACHABLE}: No server answered within the failover budget; the message names the servers tried. The outcome of a checkout that failed so is settled by the library: the program never holds a seat it was not handed. */
public class UnreachableException extends LicenseException {
    private static final long serialVersionUID = 1L;

    public UnreachableException(String message) {
        super(Status.UNREACHABLE.code(), message);
    }
}
