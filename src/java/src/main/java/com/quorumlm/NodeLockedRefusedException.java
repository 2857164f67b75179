package com.quorumlm;

/** {@link Status#NODE_LOCKED_REFUSED}: Every node-locked line for the feature was refused and no server entry exists; the message names file, line, feature and reason. */
public class NodeLockedRefusedException extends LicenseException {
    private static final long serialVersionUID = 1L;

    public NodeLockedRefusedException(String message) {
        super(Status.NODE_LOCKED_REFUSED.code(), message);
    }
}
