package com.quorumlm;

import java.util.List;

/**
 * {@link Status#DENIED}: the cluster refused the checkout. {@link #reason()} is the denial
 * reason ({@code "ALL_IN_USE"}, ...) and {@link #holders()} who holds the seats, when the
 * cluster said.
 */
public class DeniedException extends LicenseException {
    private static final long serialVersionUID = 1L;

    private final String reason;
    private final List<Holder> holders;

    public DeniedException(String reason, String message, List<Holder> holders) {
        super(Status.DENIED.code(), message);
        this.reason = reason;
        this.holders = List.copyOf(holders);
    }

    /** The denial reason, as the protocol names it: {@code "ALL_IN_USE"}, {@code "EXCLUDED"}, ... */
    public String reason() {
        return reason;
    }

    /** Who holds the feature's seats (may be empty). */
    public List<Holder> holders() {
        return holders;
    }
}
